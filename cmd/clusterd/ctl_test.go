package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/clusterd/clusterd/master"
)

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("closed pipe") }

// TestPrintStatusReportsWriteErrors: ctl knows when its answer could not
// be written, and then exits non-zero.
func TestPrintStatusReportsWriteErrors(t *testing.T) {
	st := &master.Status{Workers: []master.WorkerStatus{{ID: 1}}}
	if err := printStatus(failWriter{}, st); err == nil {
		t.Error("printStatus to a failing writer: no error")
	}
	var b bytes.Buffer
	if err := printStatus(&b, st); err != nil || !strings.Contains(b.String(), "ID") {
		t.Errorf("printStatus: %v, %q", err, b.String())
	}
}
