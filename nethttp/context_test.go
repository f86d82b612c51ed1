package nethttp

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRequestContext(t *testing.T) {
	var c reqContext
	if c.Err() != nil {
		t.Fatal("Err before cancel")
	}
	done := c.Done()
	child, stopChild := context.WithTimeout(&c, time.Hour)
	defer stopChild()
	ran := make(chan struct{})
	c.AfterFunc(func() { close(ran) })
	stopped := c.AfterFunc(func() { t.Error("a stopped AfterFunc ran") })
	if !stopped() {
		t.Fatal("stop before cancel reported false")
	}
	c.cancel()
	c.cancel() // idempotent
	for what, ch := range map[string]<-chan struct{}{"Done": done, "child": child.Done(), "AfterFunc": ran} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not closed after cancel", what)
		}
	}
	if !errors.Is(c.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("Err %v, child's %v", c.Err(), child.Err())
	}
	select {
	case <-c.Done(): // a Done asked for after the cancel is closed too
	default:
		t.Fatal("Done after cancel is open")
	}
	late := make(chan struct{})
	c.AfterFunc(func() { close(late) })
	select {
	case <-late:
	case <-time.After(5 * time.Second):
		t.Fatal("AfterFunc after cancel did not run")
	}
}
