// Command chat is a WebSocket chat room on gorilla/websocket that runs
// unchanged under clusterd. Every message a client sends is broadcast to
// the clients connected to the same worker (a real deployment would relay
// between workers through a shared broker). When a worker drains — a
// rolling restart, a stop — clusterd calls the hub's Shutdown, which
// sends every client a close frame (1001, going away) so that it can
// reconnect to a fresh worker.
//
//	go run ./chat --listen 127.0.0.1:8080 --workers 2
//
// Routes:
//
//	GET /     a short text page saying which worker answered
//	GET /ws   the chat WebSocket: text messages in, broadcast out
package main

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/clusterd/clusterd/examples/internal/examplemain"
)

func main() {
	opts := examplemain.Flags()
	hub := newHub()
	opts.OnShutdown = hub.Shutdown
	opts.GracefulTimeout = 10 * time.Second
	examplemain.Serve(opts, hub.routes())
}

// writeWait bounds each write to a client, so a stalled one cannot hold
// the broadcast.
const writeWait = 5 * time.Second

// A hub is the chat room of one worker.
type hub struct {
	upgrader websocket.Upgrader

	mu      sync.Mutex
	clients map[*client]struct{}
	closing bool
}

// A client is one WebSocket; its mutex serializes writes to it.
type client struct {
	mu   sync.Mutex
	conn *websocket.Conn
}

func newHub() *hub { return &hub{clients: map[*client]struct{}{}} }

func (h *hub) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "chat served by worker %d; connect to /ws\n", os.Getpid())
	})
	mux.HandleFunc("GET /ws", h.serveWS)
	return mux
}

// serveWS upgrades the request and relays the client's messages until it
// goes away.
func (h *hub) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered
	}
	c := &client{conn: conn}
	if !h.join(c) {
		c.close(websocket.CloseGoingAway, "server shutting down")
		return
	}
	defer h.leave(c)
	for {
		kind, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if kind == websocket.TextMessage {
			h.broadcast(msg)
		}
	}
}

func (h *hub) join(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.clients[c] = struct{}{}
	return true
}

func (h *hub) leave(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
	_ = c.conn.Close()
}

func (h *hub) broadcast(msg []byte) {
	h.mu.Lock()
	clients := slices.Collect(maps.Keys(h.clients))
	h.mu.Unlock()
	for _, c := range clients {
		c.send(websocket.TextMessage, msg)
	}
}

func (c *client) send(kind int, msg []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
	_ = c.conn.WriteMessage(kind, msg)
}

// close sends a close frame; the client answers with its own and closes,
// which ends serveWS's read loop.
func (c *client) close(code int, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	deadline := time.Now().Add(writeWait)
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), deadline)
	_ = c.conn.SetReadDeadline(deadline) // a client that never answers is dropped
}

// Shutdown tells every client the server is going away; clusterd calls it
// when the worker drains, then waits for the connections to close.
func (h *hub) Shutdown() {
	h.mu.Lock()
	h.closing = true
	clients := slices.Collect(maps.Keys(h.clients))
	h.mu.Unlock()
	for _, c := range clients {
		c.close(websocket.CloseGoingAway, "server shutting down")
	}
}
