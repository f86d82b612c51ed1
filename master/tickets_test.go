package master

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/ipc"
)

// Every worker gets the same ticket keys when it comes online and again at
// each rotation, which keeps the previous key behind the new one.
func TestTicketKeysSharedAndRotated(t *testing.T) {
	const rotate = 200 * time.Millisecond // short of the heartbeat deadline
	h := newHarness(t, 2, func(c *Config) { c.TicketKeys, c.TicketRotate = true, rotate })
	h.m.start()
	procs := h.sp.all()
	var first [][]byte
	for _, p := range procs {
		p.send(t, ipc.Message{Type: ipc.Online, PID: p.pid})
		h.until(func() bool { return h.state(p) == Online })
		{
			m := p.expect(t, ipc.TicketKeys)
			if len(m.Keys) != 1 || len(m.Keys[0]) != ipc.TicketKeyLen {
				t.Fatalf("keys %x, want one of %d bytes", m.Keys, ipc.TicketKeyLen)
			}
			if first == nil {
				first = m.Keys
			} else if !bytes.Equal(m.Keys[0], first[0]) {
				t.Fatalf("worker %d got another key", p.pid)
			}
		}
		p.send(t, ipc.Message{Type: ipc.Ready})
		h.until(func() bool { return h.state(p) == Ready })
	}
	h.advance(rotate)
	var second [][]byte
	for _, p := range procs {
		m := p.expect(t, ipc.TicketKeys)
		if len(m.Keys) != 2 || !bytes.Equal(m.Keys[1], first[0]) || bytes.Equal(m.Keys[0], first[0]) {
			t.Fatalf("after a rotation: %x, want a new key then %x", m.Keys, first[0])
		}
		if second != nil && !bytes.Equal(second[0], m.Keys[0]) {
			t.Fatal("workers got different keys")
		}
		second = m.Keys
	}
	h.advance(rotate)
	for _, p := range procs {
		m := p.expect(t, ipc.TicketKeys)
		if len(m.Keys) != 2 || !bytes.Equal(m.Keys[1], second[0]) {
			t.Fatalf("after two rotations: %d keys, the oldest must go", len(m.Keys))
		}
	}
}

// Without TLS no keys travel.
func TestNoTicketKeysWithoutTLS(t *testing.T) {
	h := newHarness(t, 1)
	h.startPool()
	if len(h.m.tickets) != 0 || h.m.ticketTimer != nil {
		t.Fatal("ticket keys made for workers that serve no TLS")
	}
}

// A failing CheckReload refuses the roll with its reason; no worker starts.
func TestCheckReloadRefusesRoll(t *testing.T) {
	bad := errors.New("--tls-key k.pem: tls: private key does not match public key")
	h := newHarness(t, 2, func(c *Config) { c.CheckReload = func() error { return bad } })
	h.startPool()
	resp, ok := answered(h.reload())
	if !ok || resp.OK || !strings.Contains(resp.Error, bad.Error()) {
		t.Fatalf("roll answer %+v (answered %v), want refused with the reason", resp, ok)
	}
	if h.started() != 2 || h.m.roll != nil || h.m.generation != 0 {
		t.Errorf("%d started, roll %v, generation %d", h.started(), h.m.roll, h.m.generation)
	}
}

// The keys pass to the new master of an upgrade on the channel's first
// line, which it reads without taking what follows; it hands them to its
// workers and rotates them when the old master would have.
func TestTicketKeysPassToNewMaster(t *testing.T) {
	const rotate = 200 * time.Millisecond
	tls := func(c *Config) { c.TicketKeys, c.TicketRotate = true, rotate }
	old := newHarness(t, 1, tls)
	old.m.start()
	old.advance(rotate) // two keys now
	old.advance(rotate / 4)
	line := old.m.ticketsLine()
	if len(old.m.tickets) != 2 || !strings.HasPrefix(line, "tickets 50 ") {
		t.Fatalf("%d keys, line %q", len(old.m.tickets), line)
	}

	theirs, ours := socketPair(t)
	oldEnd := os.NewFile(uintptr(theirs), "old")
	defer oldEnd.Close()
	if _, err := oldEnd.WriteString(line + "\n" + lineReady + "\n"); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, 1, tls)
	ch := os.NewFile(uintptr(ours), "new")
	defer ch.Close()
	h.m.takeTickets(ch)
	if fmt.Sprintf("%x", h.m.tickets) != fmt.Sprintf("%x", old.m.tickets) {
		t.Fatalf("new master's keys %x, want the old master's %x", h.m.tickets, old.m.tickets)
	}
	rest := make([]byte, 16)
	n, _ := ch.Read(rest)
	if string(rest[:n]) != lineReady+"\n" {
		t.Fatalf("after the keys the channel holds %q, want the next line", rest[:n])
	}
	h.m.start()
	p := h.sp.all()[0]
	p.send(t, ipc.Message{Type: ipc.Online, PID: p.pid})
	h.until(func() bool { return h.state(p) == Online })
	if m := p.expect(t, ipc.TicketKeys); fmt.Sprintf("%x", m.Keys) != fmt.Sprintf("%x", old.m.tickets) {
		t.Fatalf("worker got %x, want the old master's keys", m.Keys)
	}
	p.send(t, ipc.Message{Type: ipc.Ready})
	h.until(func() bool { return h.state(p) == Ready })
	h.advance(rotate - rotate/4) // the old master's next rotation
	if m := p.expect(t, ipc.TicketKeys); len(m.Keys) != 2 || !bytes.Equal(m.Keys[1], old.m.tickets[0]) {
		t.Fatalf("after the rotation: %x, want a new key then %x", m.Keys, old.m.tickets[0])
	}

	for _, bad := range []string{"", "tickets", "tickets x 00", "tickets 5 zz", "tickets 5 0011"} {
		if _, _, err := parseTicketsLine(bad); err == nil {
			t.Errorf("parseTicketsLine(%q) accepted", bad)
		}
	}
}
