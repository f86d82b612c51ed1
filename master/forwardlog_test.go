package master

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/ipc"
)

// TestForwardLogLongLines: a worker's stderr line longer than
// ipc.MaxLogLine is logged cut short, and forwarding goes on with the next
// lines (a master that stopped reading would leave the worker writing into
// a full or closed pipe).
func TestForwardLogLongLines(t *testing.T) {
	long := strings.Repeat("x", 2*ipc.MaxLogLine+100)
	in := `{"@level":"warn","@message":"first","k":1}` + "\n" +
		long + "\n" +
		"plain line\n" +
		`{"@level":"error","@message":"last"}` + "\n" +
		"no newline at the end"
	var out bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &out, JSONFormat: true, Level: hclog.Trace})
	forwardLog(log, strings.NewReader(in))
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%v: %.100q", err, line)
		}
		got = append(got, rec)
	}
	want := []struct{ level, msg, line string }{
		{"warn", "first", ""},
		{"info", "stderr", long[:ipc.MaxLogLine]},
		{"info", "stderr", "plain line"},
		{"error", "last", ""},
		{"info", "stderr", "no newline at the end"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d: %.300s", len(got), len(want), out.String())
	}
	for i, w := range want {
		line, _ := got[i]["line"].(string)
		if got[i]["@level"] != w.level || got[i]["@message"] != w.msg || line != w.line {
			t.Errorf("record %d: %v %v line of %d bytes, want %s %s line of %d bytes",
				i, got[i]["@level"], got[i]["@message"], len(line), w.level, w.msg, len(w.line))
		}
	}
	if got[1]["truncated"] != true {
		t.Errorf("the long line is not marked truncated: %v", got[1]["truncated"])
	}
}
