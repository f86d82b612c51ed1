package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/clusterd/clusterd"
	"github.com/clusterd/clusterd/master"
)

// socketFlags are the flags that shape every listener.
type socketFlags struct {
	backlog     int
	mode        modeFlag
	deferAccept bool
	fastOpen    int
}

// modeFlag is a file permission in octal (0660).
type modeFlag os.FileMode

func (m *modeFlag) String() string { return fmt.Sprintf("%04o", uint32(*m)) }
func (m *modeFlag) Set(v string) error {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n > 0o777 {
		return fmt.Errorf("invalid mode %q: want octal permissions such as 0660", v)
	}
	*m = modeFlag(n)
	return nil
}

// apply checks the listener flags and sets them in opts; every error is
// one line.
func (sf *socketFlags) apply(fs *flag.FlagSet, opts *clusterd.Options) error {
	for _, l := range opts.Listen {
		if _, err := master.ParseListen(l); err != nil {
			return err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["backlog"] && (sf.backlog < 1 || sf.backlog > 65535) {
		return fmt.Errorf("--backlog must be 1 to 65535, got %d", sf.backlog)
	}
	if sf.fastOpen < 0 || sf.fastOpen > 65535 {
		return fmt.Errorf("--tcp-fastopen must be 0 (off) to 65535, got %d", sf.fastOpen)
	}
	opts.Sockets = clusterd.SocketOptions{
		Backlog:     sf.backlog,
		Mode:        os.FileMode(sf.mode),
		TCPFastOpen: sf.fastOpen,
	}
	if sf.deferAccept {
		opts.Sockets.TCPDeferAccept = opts.HTTP.HeaderTimeout
	}
	return nil
}
