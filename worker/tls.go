package worker

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"

	"github.com/clusterd/clusterd/ipc"
	"github.com/clusterd/clusterd/tlsconn"
)

// isTLS reports whether the listener key is served over TLS.
func (p *proc) isTLS(key string) bool {
	return p.cfg.TLS != nil && slices.Contains(p.cfg.TLSListen, key)
}

// setTicketKeys installs the session ticket keys the master sent, now or,
// before the TLS server exists, when it starts.
func (p *proc) setTicketKeys(msg ipc.Message) {
	var keys [][32]byte
	for _, k := range msg.Keys {
		if len(k) != ipc.TicketKeyLen {
			p.log.Warn("bad session ticket key from master", "len", len(k))
			return
		}
		keys = append(keys, [32]byte(k))
	}
	if len(keys) == 0 {
		return
	}
	p.tickets = keys
	if p.tls != nil {
		p.tls.SetSessionTicketKeys(keys)
	}
}

// serveTLS starts the TLS server on the listening sockets files, which it
// takes over.
func (p *proc) serveTLS(files []*os.File) error {
	if len(files) == 0 {
		return nil
	}
	p.tls = tlsconn.New(tlsconn.Config{TLS: p.cfg.TLS, HTTP: p.cfg.HTTP, Logger: p.log.Named("tls")}, p.srv)
	if p.tickets != nil {
		p.tls.SetSessionTicketKeys(p.tickets)
	}
	var lns []net.Listener
	for _, f := range files {
		ln, err := net.FileListener(f)
		_ = f.Close()
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return fmt.Errorf("worker: TLS listener: %w", err)
		}
		lns = append(lns, ln)
	}
	for _, ln := range lns {
		go func() {
			if err := p.tls.Serve(ln); err != tlsconn.ErrServerClosed {
				p.log.Error("TLS listener stopped", "addr", ln.Addr(), "error", err)
			}
		}()
	}
	return nil
}

// shutdownTLS stops accepting TLS connections and lets the handshakes in
// progress finish, then, while the loop drains the plaintext sides, waits
// for the TLS connections to close within ctx.
func (p *proc) shutdownTLS(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	if p.tls == nil {
		done <- nil
		return done
	}
	if err := p.tls.StopAccepting(ctx); err != nil {
		p.log.Warn("TLS handshakes cut short", "error", err)
	}
	go func() { done <- p.tls.Shutdown(ctx) }()
	return done
}
