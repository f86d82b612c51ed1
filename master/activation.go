package master

import (
	"os"
	"strconv"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/clusterd/clusterd/internal/rawfd"
)

// inherited is a socket the service manager passed (socket activation).
type inherited struct {
	fd         int
	file       *os.File
	name       string // from LISTEN_FDNAMES (FileDescriptorName=), else LISTEN_FD_N
	form, addr string // as checkInherited found it
	err        error  // why it cannot be served
	used       bool
	key        string // in an upgrade: the --listen value the old master served it as
	sockFile   bool   // in an upgrade: the master removes its socket file when it stops
	backlog    int    // in an upgrade: as the old master set it
	reuseport  bool   // in an upgrade: the bound base of a reuseport group
}

// Activated reports whether the service manager passed this process
// listening sockets (LISTEN_FDS, with LISTEN_PID naming this process).
func Activated() bool {
	pid, err1 := strconv.Atoi(os.Getenv("LISTEN_PID"))
	n, err2 := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	return err1 == nil && err2 == nil && pid == os.Getpid() && n > 0
}

// activate takes the sockets passed by the service manager and removes
// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from the environment, so that
// the workers do not see them.
func (t *listenerTable) activate() {
	for _, f := range activation.Files(true) {
		fd, err := rawfd.Of(f)
		in := &inherited{fd: fd, file: f, name: f.Name(), err: err}
		if err == nil {
			in.form, in.addr, in.err = checkInherited(fd)
		}
		t.inherited = append(t.inherited, in)
	}
}
