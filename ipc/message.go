// Package ipc is the channel between a clusterd master and its workers:
// framed, versioned messages over an AF_UNIX SOCK_SEQPACKET socketpair,
// with file descriptors passed alongside using SCM_RIGHTS.
//
// A frame is one datagram: a 4-byte header (magic "cd", protocol version,
// message type) followed by a JSON body of at most MaxBody bytes. SEQPACKET
// keeps datagram boundaries, so a frame never has to be reassembled, and a
// peer that goes away shows up as EOF on the other end.
package ipc

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the protocol version carried in every frame. A master and a
// worker built from different versions refuse each other's frames.
const Version = 1

// MaxBody bounds a frame's JSON body.
const MaxBody = 16 << 10

const headerLen = 4

var magic = [2]byte{'c', 'd'}

// ErrClosed is returned when the connection has been closed locally.
var ErrClosed = errors.New("ipc: connection closed")

// Type identifies a message.
type Type uint8

// Message types. The direction is master → worker (M→W) or worker → master (W→M).
const (
	// Online (W→M): the worker process is up; carries PID.
	Online Type = iota + 1
	// QueryServer (W→M): the worker asks for the listener Addr, a --listen
	// value as the master names it in EnvListen.
	QueryServer
	// ServerReply (M→W): answers QueryServer for Key. On success exactly one
	// fd (the listening socket) travels with it, unless RR is set: then the
	// master accepts and sends each connection with Handoff. On failure Err
	// is set and no fd travels.
	ServerReply
	// Listening (W→M): the worker serves Key.
	Listening
	// Ready (W→M): the worker serves every listener it asked for.
	Ready
	// Heartbeat (W→M), every second: carries LoopAge (how long ago the
	// worker's event loop last turned), Requests, Connections and Stats;
	// once more after a drain, with Stats.Final set.
	Heartbeat
	// Drain (M→W): stop accepting, finish in-flight requests, exit.
	Drain
	// Handoff (M→W): serve the connections whose fds travel with it (Node's
	// newconn): N of them (1 when N is 0, at most MaxHandoff), numbered
	// Seq, Seq+1, … in the order of the fds. Idle says they are keep-alive
	// connections between requests that another worker gave away (Pass),
	// not new ones: the next request on each is due within the idle
	// timeout, and they are not counted as accepted again.
	Handoff
	// HandoffReply (W→M): answers Handoff Seq with the same N. The worker
	// serves every connection but those listed in Refused (Err says why;
	// the master passes them on). Err with no Refused refuses them all.
	// Connections is how many connections the worker has open, those it
	// just took included.
	HandoffReply
	// TicketKeys (M→W): the TLS session ticket keys to use from now on,
	// Keys[0] to encrypt new tickets, all of them to decrypt. The master
	// sends them before any ServerReply and again at every rotation, so a
	// session resumes on whichever worker a client reaches.
	TicketKeys
	// Pass (W→M): the worker, which accepts on a socket of its own and
	// holds clearly more than its share of the open connections, gives
	// the master idle keep-alive connections whose fds travel with it (N
	// of them, as in Handoff); the master hands them to the worker with
	// the fewest, as it hands round-robin connections. A Pass with a Seq
	// (the worker numbers them from 1 when EnvPassReply says the master
	// answers) is answered with PassReply, and the worker keeps its own
	// copies of the connections until then.
	Pass
	// Stopped (W→M), after Drain: the worker accepts no more connections
	// (its listeners are closed; it still finishes what it has). A rolling
	// restart answers once the workers it replaced have said so.
	Stopped
	// PassReply (M→W): answers Pass Seq with the same N. With Err set the
	// master took none of its connections (their descriptors did not
	// arrive: it is at its descriptor limit): the worker serves them
	// again. Otherwise the master has its own copies and the worker closes
	// its.
	PassReply
	maxType
)

var typeNames = [...]string{
	Online:       "online",
	QueryServer:  "queryServer",
	ServerReply:  "serverReply",
	Listening:    "listening",
	Ready:        "ready",
	Heartbeat:    "heartbeat",
	Drain:        "drain",
	Handoff:      "handoff",
	HandoffReply: "handoffReply",
	TicketKeys:   "ticketKeys",
	Pass:         "pass",
	Stopped:      "stopped",
	PassReply:    "passReply",
}

func (t Type) String() string {
	if t > 0 && t < maxType {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Valid reports whether t is a known message type.
func (t Type) Valid() bool { return t > 0 && t < maxType }

// fds is how many file descriptors a well-formed message of this type carries.
func (m *Message) fds() int {
	switch {
	case m.Type == ServerReply && m.Err == "" && !m.RR:
		return 1
	case m.Type == Handoff, m.Type == Pass:
		return m.Conns()
	}
	return 0
}

// MaxHandoff bounds the connections one Handoff carries.
const MaxHandoff = 32

// Conns is how many connections a Handoff, HandoffReply, Pass or
// PassReply is about.
func (m *Message) Conns() int {
	if m.N <= 0 {
		return 1
	}
	return m.N
}

// Message is one frame. Only the fields meaningful for Type are set.
type Message struct {
	Type Type `json:"-"`

	PID     int    `json:"pid,omitempty"`
	Key     string `json:"key,omitempty"` // a listener: its --listen value (QueryServer, Listening)
	Network string `json:"network,omitempty"`
	Addr    string `json:"addr,omitempty"`
	Err     string `json:"err,omitempty"`
	RR      bool   `json:"rr,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	N       int    `json:"n,omitempty"`    // connections in a Handoff batch
	Idle    bool   `json:"idle,omitempty"` // a Handoff of idle keep-alive connections
	// Refused lists the Seqs of a Handoff batch the worker does not serve.
	Refused []uint64 `json:"refused,omitempty"`

	LoopAge     time.Duration `json:"loop_age,omitempty"`
	Requests    uint64        `json:"requests,omitempty"`
	Connections int64         `json:"connections,omitempty"`

	Keys  [][]byte     `json:"keys,omitempty"` // TicketKeys: TicketKeyLen bytes each
	Stats *WorkerStats `json:"stats,omitempty"`
}

// TicketKeyLen is the length of a TLS session ticket key.
const TicketKeyLen = 32

// marshal encodes m as one frame.
func (m *Message) marshal() ([]byte, error) {
	if !m.Type.Valid() {
		return nil, fmt.Errorf("ipc: marshal: unknown message %v", m.Type)
	}
	if m.N < 0 || m.N > MaxHandoff {
		return nil, fmt.Errorf("ipc: marshal %v of %d connections, want 0..%d", m.Type, m.N, MaxHandoff)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("ipc: marshal %v: %w", m.Type, err)
	}
	if len(body) > MaxBody {
		return nil, fmt.Errorf("ipc: marshal %v: body of %d bytes exceeds %d", m.Type, len(body), MaxBody)
	}
	frame := make([]byte, 0, headerLen+len(body))
	frame = append(frame, magic[0], magic[1], Version, byte(m.Type))
	return append(frame, body...), nil
}

// unmarshal decodes one frame.
func unmarshal(frame []byte) (Message, error) {
	var m Message
	if len(frame) < headerLen {
		return m, fmt.Errorf("ipc: short frame of %d bytes", len(frame))
	}
	if frame[0] != magic[0] || frame[1] != magic[1] {
		return m, fmt.Errorf("ipc: bad magic %q", frame[:2])
	}
	if frame[2] != Version {
		return m, fmt.Errorf("ipc: protocol version %d, want %d", frame[2], Version)
	}
	m.Type = Type(frame[3])
	if !m.Type.Valid() {
		return m, fmt.Errorf("ipc: unknown message %v", m.Type)
	}
	if err := json.Unmarshal(frame[headerLen:], &m); err != nil {
		return m, fmt.Errorf("ipc: %v body: %w", m.Type, err)
	}
	if m.N < 0 || m.N > MaxHandoff {
		return m, fmt.Errorf("ipc: %v of %d connections, want 0..%d", m.Type, m.N, MaxHandoff)
	}
	return m, nil
}

// Environment variables a master sets for the worker processes it starts.
// A worker removes them once read, so its own children do not inherit them,
// and a master removes any it inherited before starting its workers.
const (
	// EnvPrefix starts the name of every variable below.
	EnvPrefix = "CLUSTERD_WORKER_"
	// EnvWorkerID holds the worker's slot id (1..N); its presence makes a
	// process started from the clusterd binary run as a worker.
	EnvWorkerID = EnvPrefix + "ID"
	// EnvGeneration holds the pool generation the worker belongs to.
	EnvGeneration = EnvPrefix + "GENERATION"
	// EnvFD holds the descriptor number of the worker's end of the channel.
	EnvFD = EnvPrefix + "IPC_FD"
	// EnvListen holds the listeners the worker serves, a JSON list of
	// --listen values as the master resolved them (socket activation can
	// supply listeners the worker's own flags do not name).
	EnvListen = EnvPrefix + "LISTEN"
	// EnvBoardFD holds the descriptor number of the scoreboard's memory
	// file under shared and reuseport scheduling, EnvBoardBatonFD that of its eventfd,
	// and EnvBoardSlot the worker's slot on it (internal/scoreboard); all
	// absent without one.
	EnvBoardFD      = EnvPrefix + "BOARD_FD"
	EnvBoardBatonFD = EnvPrefix + "BOARD_BATON_FD"
	EnvBoardSlot    = EnvPrefix + "BOARD_SLOT"
	// EnvBoardPass is "1" under reuseport scheduling, where each worker
	// accepts on a socket of its own: a worker clearly over its share
	// gives idle connections to the master (Pass) instead of holding off.
	EnvBoardPass = EnvPrefix + "BOARD_PASS"
	// EnvPassReply is "1" when the master answers every numbered Pass with
	// PassReply: the worker then numbers its Passes and keeps its copies
	// of their connections until the answer. Without it the worker closes
	// them once sent.
	EnvPassReply = EnvPrefix + "PASS_REPLY"
)

// Worker log lines. Besides the channel, a worker talks to its master
// through its stderr, which the master reads line by line until EOF and
// logs again through the worker's named logger:
//
//   - a line that is a JSON object with a string LogMessage field is one
//     record, as hclog's JSON format writes it: LogLevel names its level
//     (trace, debug, info, warn or error), and every field whose name does
//     not start with LogMetaPrefix is kept, in name order; the rest
//     (@timestamp, @module, …) are the master's to set again;
//   - any other line (a panic, a stray print) is logged at info as
//     "stderr" with the line as it came;
//   - a line longer than MaxLogLine bytes is logged as "stderr" with its
//     first MaxLogLine bytes and truncated=true; the rest is dropped.
//
// A worker therefore logs JSON to stderr (worker.Config's default logger
// does), and never writes anything to stderr it would not want logged.
const (
	LogMessage    = "@message"
	LogLevel      = "@level"
	LogMetaPrefix = "@"
	MaxLogLine    = 1 << 20
)
