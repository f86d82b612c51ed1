package master

// Control commands: the words of Request.Cmd, as clusterd ctl takes them.
const (
	CmdStatus  = "status"  // the master and its workers
	CmdReload  = "reload"  // rolling restart; answered when it ends
	CmdScale   = "scale"   // to Request.N workers
	CmdStop    = "stop"    // graceful stop
	CmdUpgrade = "upgrade" // hand over to a new master running the binary on disk; answered when it ends
)

// SchedModes lists the values Config.Sched takes; SchedShared is the default.
var SchedModes = []string{SchedShared, SchedRR, SchedReuseport}
