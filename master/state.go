package master

// State is a worker's place in its life cycle. Only (*worker).setState
// changes it; it refuses transitions not listed here.
type State int

const (
	// Starting: the process was started and has not said online yet.
	// Next: Online, Draining, Failed, Exited.
	Starting State = iota
	// Online: the process is up and is asking for its listeners.
	// Next: Ready, Draining, Failed, Exited.
	Online
	// Ready: the worker serves every listener it asked for; it counts as
	// serving capacity. Next: Draining, Failed, Exited.
	Ready
	// Draining: the master asked the worker to stop accepting, finish its
	// in-flight requests and exit. Next: Exited, Failed.
	Draining
	// Exited is terminal: the process ended after the master asked it to.
	Exited
	// Failed is terminal: the process ended on its own (crash, bad start-up)
	// or was killed as hung, unready or past the graceful timeout.
	Failed
)

var stateNames = [...]string{"starting", "online", "ready", "draining", "exited", "failed"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Terminal reports whether the worker process is gone.
func (s State) Terminal() bool { return s == Exited || s == Failed }

// canMove reports whether from → to is an allowed transition.
func canMove(from, to State) bool {
	switch from {
	case Starting:
		return to == Online || to == Draining || to.Terminal()
	case Online:
		return to == Ready || to == Draining || to.Terminal()
	case Ready:
		return to == Draining || to.Terminal()
	case Draining:
		return to.Terminal()
	}
	return false
}
