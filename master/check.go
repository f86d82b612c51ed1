package master

import (
	"fmt"
	"path/filepath"
)

// Check checks cfg as New and Run would, without binding a socket or
// starting a process: the pool settings, the workers' user and group, and
// every listener's form, with the directory of each Unix socket file. A
// master upgrade runs it in the new binary first (see upgrade.go); like
// `nginx -t`, it also tells an operator whether a configuration would
// start. Sockets inherited from a service manager (fd:N, systemd:NAME)
// are checked for their form only: they exist only in the master.
func Check(cfg Config) error {
	cfg.Command = []string{"check"} // no need to find the executable
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	if _, _, err := workerCredential(cfg.User, cfg.Group); err != nil {
		return err
	}
	for _, s := range cfg.Listen {
		spec, err := ParseListen(s)
		if err != nil {
			return err
		}
		if spec.Form == FormUnix {
			if err := checkListenDir(filepath.Dir(spec.Addr)); err != nil {
				return fmt.Errorf("--listen %s: %w", s, err)
			}
		}
	}
	return nil
}
