package master

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writePIDFile writes this process's pid to Config.PIDFile atomically: a
// temporary file in the same directory, renamed over it, so that a reader
// sees the old pid or the new one, never an empty or partial file.
func (m *Master) writePIDFile() {
	if m.cfg.PIDFile == "" {
		return
	}
	if err := writeFileAtomic(m.cfg.PIDFile, []byte(pidString())); err != nil {
		m.log.Error("cannot write the PID file", "path", m.cfg.PIDFile, "error", err)
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// removePIDFile removes Config.PIDFile if it still names this process: a
// master that handed over to a new one leaves it to its successor.
func (m *Master) removePIDFile() {
	if m.cfg.PIDFile == "" {
		return
	}
	b, err := os.ReadFile(m.cfg.PIDFile)
	if err == nil && strings.TrimSpace(string(b))+"\n" == pidString() {
		_ = os.Remove(m.cfg.PIDFile)
	}
}
