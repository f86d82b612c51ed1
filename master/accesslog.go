package master

import (
	"fmt"
	"os"
	"syscall"
)

// giveLog hands the workers' access log file to the user they run as
// (cred; nil: the master's own), creating it if need be, as nginx's master
// does, so that workers that dropped their privileges can append to it.
// Once logrotate has moved it away, the workers create the next one
// themselves when they reopen it: the directory must let them, or
// logrotate must create it for them (its create directive).
func giveLog(path string, cred *syscall.Credential) error {
	if cred == nil || path == "" || path == "-" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	defer f.Close()
	if err := f.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("access log: give it to the workers' user: %w", err)
	}
	return nil
}
