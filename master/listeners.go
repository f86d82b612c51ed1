package master

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/clusterd/clusterd/ipc"
)

// listenerTable holds one listening socket per key for the master's whole
// life. Workers receive duplicates and close only those.
type listenerTable struct {
	files map[string]*os.File
	addrs map[string]string // key → the bound address, e.g. 127.0.0.1:41234
	order []string
}

func newListenerTable() *listenerTable {
	return &listenerTable{files: map[string]*os.File{}, addrs: map[string]string{}}
}

// Key names a listener the way workers ask for it (see ipc.Key).
func Key(network, addr string) string { return ipc.Key(network, addr) }

// get returns the socket for network/addr, binding it on first use.
func (t *listenerTable) get(network, addr string) (*os.File, error) {
	k := Key(network, addr)
	if f, ok := t.files[k]; ok {
		return f, nil
	}
	f, bound, err := bind(network, addr)
	if err != nil {
		return nil, err
	}
	t.files[k] = f
	t.addrs[k] = bound
	t.order = append(t.order, k)
	return f, nil
}

// bind creates a listening TCP socket and returns a descriptor of it that
// no Go poller watches (the master never accepts on it).
func bind(network, addr string) (*os.File, string, error) {
	if !strings.HasPrefix(network, "tcp") {
		return nil, "", fmt.Errorf("listen %s %s: unsupported network", network, addr)
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), network, addr)
	if err != nil {
		return nil, "", err
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		return nil, "", fmt.Errorf("listen %s %s: %w", network, addr, err)
	}
	return f, ln.Addr().String(), nil
}

// Addr returns the address the listener for key is bound to.
func (t *listenerTable) Addr(key string) string { return t.addrs[key] }

func (t *listenerTable) closeAll() {
	for _, k := range t.order {
		_ = t.files[k].Close()
	}
}
