package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/clusterd/clusterd/examples/internal/exampletest"
)

const envMain = "CLUSTERD_CHAT_EXAMPLE_MAIN"

func TestMain(m *testing.M) {
	exampletest.RunMain(envMain, main)
	os.Exit(m.Run())
}

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") + "/ws" }

// TestChat: gorilla/websocket and coder/websocket clients chat through the
// adapter, and a drain closes them all with 1001 from the hub's Shutdown.
func TestChat(t *testing.T) {
	hub := newHub()
	s := exampletest.Serve(t, hub.routes(), hub.Shutdown)
	url := wsURL(s.URL)
	var gorillas []*websocket.Conn
	for i := 0; i < 3; i++ {
		c, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatalf("gorilla dial: %v", err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d", resp.StatusCode)
		}
		defer c.Close()
		gorillas = append(gorillas, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coder, _, err := cws.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("coder dial: %v", err)
	}
	defer coder.CloseNow()
	coder.SetReadLimit(1 << 20)
	waitClients(t, hub, 4)

	if err := gorillas[0].WriteMessage(websocket.TextMessage, []byte("hello from gorilla")); err != nil {
		t.Fatal(err)
	}
	for i, c := range gorillas {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "hello from gorilla" {
			t.Fatalf("gorilla client %d: %q %v", i, msg, err)
		}
	}
	if _, msg, err := coder.Read(ctx); err != nil || string(msg) != "hello from gorilla" {
		t.Fatalf("coder client: %q %v", msg, err)
	}
	big := strings.Repeat("b", 200<<10)
	if err := coder.Write(ctx, cws.MessageText, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := gorillas[2].ReadMessage(); err != nil || string(msg) != big {
		t.Fatalf("a 200 KiB message from coder: %d bytes, %v", len(msg), err)
	}
	if _, msg, err := coder.Read(ctx); err != nil || len(msg) != len(big) {
		t.Fatalf("coder's own message back: %d bytes, %v", len(msg), err)
	}
	for _, c := range gorillas[:2] { // their copy of the big one
		if _, msg, err := c.ReadMessage(); err != nil || len(msg) != len(big) {
			t.Fatalf("the big message: %d bytes, %v", len(msg), err)
		}
	}

	// Drain: every client gets 1001 and closes; Shutdown returns once the
	// hijacked connections are gone.
	done := make(chan error, 1)
	go func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		done <- s.Shutdown(sctx)
	}()
	for i, c := range gorillas {
		_, _, err := c.ReadMessage()
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("gorilla client %d: %v, want close 1001", i, err)
		}
		c.Close()
	}
	_, _, err = coder.Read(ctx)
	if cws.CloseStatus(err) != cws.StatusGoingAway {
		t.Fatalf("coder client: %v, want close 1001", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestCoderServer: a coder/websocket server runs unchanged too.
func TestCoderServer(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := cws.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			kind, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), kind, append([]byte("echo "), msg...)); err != nil {
				return
			}
		}
	})
	s := exampletest.Serve(t, h, nil)
	for _, dial := range []func() (func(string) (string, error), func(), error){
		func() (func(string) (string, error), func(), error) { // gorilla client
			c, _, err := websocket.DefaultDialer.Dial(wsURL(s.URL), nil)
			if err != nil {
				return nil, nil, err
			}
			return func(m string) (string, error) {
				if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
					return "", err
				}
				_, b, err := c.ReadMessage()
				return string(b), err
			}, func() { c.Close() }, nil
		},
		func() (func(string) (string, error), func(), error) { // coder client
			ctx := context.Background()
			c, _, err := cws.Dial(ctx, wsURL(s.URL), nil)
			if err != nil {
				return nil, nil, err
			}
			c.SetReadLimit(1 << 20)
			return func(m string) (string, error) {
				if err := c.Write(ctx, cws.MessageText, []byte(m)); err != nil {
					return "", err
				}
				_, b, err := c.Read(ctx)
				return string(b), err
			}, func() { c.Close(cws.StatusNormalClosure, "") }, nil
		},
	} {
		echo, closeFn, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"one", strings.Repeat("x", 70<<10)} {
			if got, err := echo(m); err != nil || got != "echo "+m {
				t.Fatalf("echo of %d bytes: %d bytes, %v", len(m), len(got), err)
			}
		}
		closeFn()
	}
}

func waitClients(t *testing.T, h *hub, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		h.mu.Lock()
		got := len(h.clients)
		h.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients joined, want %d", got, n)
		}
	}
}

// TestRollingRestartClosesWebSockets: 1000 WebSockets on a 2-worker
// cluster; a rolling restart closes every one with 1001 from the hub's
// Shutdown, while plain HTTP requests all succeed.
func TestRollingRestartClosesWebSockets(t *testing.T) {
	const sockets = 1000
	if testing.Short() {
		t.Skip("1000 WebSockets and a rolling restart")
	}
	c := exampletest.StartCluster(t, envMain, 2)
	url := wsURL(c.URL(""))
	dialer := &websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	var closed1001, otherEnd atomic.Int32
	var wg sync.WaitGroup
	var mu sync.Mutex
	var others []string
	for i := 0; i < sockets; i++ {
		ws, _, err := dialer.Dial(url, nil)
		if err != nil {
			t.Fatalf("WebSocket %d: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ws.Close()
			_ = ws.SetReadDeadline(time.Now().Add(60 * time.Second))
			for {
				_, _, err := ws.ReadMessage()
				if err == nil {
					continue
				}
				if websocket.IsCloseError(err, websocket.CloseGoingAway) {
					closed1001.Add(1)
				} else {
					otherEnd.Add(1)
					mu.Lock()
					others = append(others, err.Error())
					mu.Unlock()
				}
				return
			}
		}()
	}

	// Plain requests, before, during and after the roll.
	stop := make(chan struct{})
	var requests, failures atomic.Int32
	var failMsg atomic.Value
	var hwg sync.WaitGroup
	client := exampletest.Client(t)
	for g := 0; g < 4; g++ {
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(c.URL("/"))
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = errors.New(resp.Status)
					}
				}
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					failMsg.Store(err.Error())
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	before := c.LogCount("worker ready")
	c.Signal(syscall.SIGHUP)
	if !c.WaitFor(60*time.Second, func() bool { return closed1001.Load()+otherEnd.Load() == sockets }) {
		t.Fatalf("after the roll, %d WebSockets closed with 1001, %d otherwise, of %d; log:\n%.5000s",
			closed1001.Load(), otherEnd.Load(), sockets, c.Log())
	}
	if !c.WaitFor(30*time.Second, func() bool { return c.LogCount("worker ready") >= before+2 }) {
		t.Fatalf("the roll did not finish; log:\n%.5000s", c.Log())
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	hwg.Wait()
	wg.Wait()
	if n := otherEnd.Load(); n != 0 {
		t.Fatalf("%d WebSockets ended without a clean 1001 close, e.g. %v", n, others[:min(len(others), 3)])
	}
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d plain requests failed during the roll, e.g. %v", n, requests.Load(), failMsg.Load())
	}
	t.Logf("%d WebSockets closed with 1001; %d plain requests, none failed", closed1001.Load(), requests.Load())
	c.Stop(15 * time.Second)
}
