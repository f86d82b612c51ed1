package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func countLines(t *testing.T, path string) (int, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n")), b
}

// TestAccessLogRotate renames the access log under load and sends
// SIGUSR1, as logrotate does: every response has its line, in one file or
// the other, and the old file gets none once the workers have reopened.
func TestAccessLogRotate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	c := startCluster(t, 2, nil, "--workers", "2", "--access-log", path, "--access-log-format", "json")
	l := startLoad(c.addr, "/", 4, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	c.signal(syscall.SIGUSR1)
	for _, id := range []float64{1, 2} {
		c.waitLog(5*time.Second, func(l map[string]any) bool {
			return l["@message"] == "access log reopened" && l["id"] == id
		})
	}
	old, err := os.Stat(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	l.stopAndWait()
	c.signal(syscall.SIGTERM)
	if code := c.wait(10 * time.Second); code != 0 {
		t.Fatalf("master exit code %d", code)
	}
	if l.errs.Load() != 0 {
		t.Fatalf("load: %v", l)
	}
	before, _ := countLines(t, path+".1")
	after, text := countLines(t, path)
	if now, _ := os.Stat(path + ".1"); now.Size() != old.Size() {
		t.Errorf("the old file grew from %d to %d bytes after the workers reopened the log", old.Size(), now.Size())
	}
	if sent := int(l.ok.Load() + l.non2xx.Load()); before+after != sent || before == 0 || after == 0 {
		t.Errorf("%d lines before the rotation and %d after, %d responses", before, after, sent)
	}
	first := text[:bytes.IndexByte(text, '\n')]
	var rec struct {
		Request string
		Status  int
		Bytes   int
		Worker  int
	}
	if err := json.Unmarshal(first, &rec); err != nil || rec.Request != "GET / HTTP/1.1" || rec.Status != 200 || rec.Bytes != 12 || rec.Worker == 0 {
		t.Errorf("line %s: %+v %v", first, rec, err)
	}
}

// TestAccessLogAsWorkerUser: with --user, the master creates the access
// log and gives it to the workers' user, who could not create it in a
// directory only root may write.
func TestAccessLogAsWorkerUser(t *testing.T) {
	uid, _ := nobody(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	exe, dir := publicCopy(t)
	path := filepath.Join(dir, "access.log")
	c := startClusterExe(t, exe, 2, nil, "--workers", "2", "--user", "nobody", "--access-log", path)
	client := newConnClient()
	for range 5 {
		if code, _, err := c.get(client, "/"); err != nil || code != 200 {
			t.Fatalf("GET /: %d %v", code, err)
		}
	}
	c.signal(syscall.SIGTERM)
	if code := c.wait(10 * time.Second); code != 0 {
		t.Fatalf("master exit code %d", code)
	}
	n, _ := countLines(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); n != 5 || st.Uid != uid {
		t.Errorf("%d lines, owner %d; want 5 and %d", n, st.Uid, uid)
	}
}
