package main

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestServeH2C: with --h2c every worker answers HTTP/2 with prior
// knowledge, and HTTP/1.1 still, with the demo app's replies.
func TestServeH2C(t *testing.T) {
	c := startCluster(t, 2, nil, "--workers", "2", "--h2c")
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	h2 := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := h2.Get("http://" + c.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(body) != "Hello World\n" {
		t.Fatalf("HTTP/2 GET /: %d %s %q", resp.StatusCode, resp.Proto, body)
	}
	resp, err = h2.Get("http://" + c.addr + "/worker")
	if err != nil {
		t.Fatal(err)
	}
	var w struct{ ID, PID int }
	err = json.NewDecoder(resp.Body).Decode(&w)
	resp.Body.Close()
	if err != nil || w.ID < 1 || w.PID < 1 {
		t.Fatalf("HTTP/2 GET /worker: %+v %v", w, err)
	}
	if code, got, err := c.get(newConnClient(), "/"); err != nil || code != 200 || got != "Hello World\n" {
		t.Fatalf("HTTP/1.1 GET /: %d %q %v", code, got, err)
	}
}
