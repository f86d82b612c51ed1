package nethttp

import (
	"net/url"
	"reflect"
	"testing"
)

// TestPlainTarget checks that a target parseTarget takes without parsing
// gives the URL url.ParseRequestURI gives.
func TestPlainTarget(t *testing.T) {
	targets := []string{"/", "/a/b", "/a?x=1", "/a?", "/a??", "/?", "//x", "///x", "/a%20b", "/a b",
		"/a?b c", "/a?x\x7f", "/a\x01", "/a#f", "/a?x#f", "/~u/-_.", "/$&+,/:;=@", "/!*'()", "/é", "*", "x"}
	for c := 0; c < 256; c++ {
		targets = append(targets, "/p"+string(rune(c)), "/p?q"+string([]byte{byte(c)}), "/"+string([]byte{byte(c)}))
	}
	plain := 0
	for _, target := range targets {
		var u url.URL
		got, err := parseTarget("GET", target, &u)
		want, werr := url.ParseRequestURI(target)
		if (err == nil) != (werr == nil) || err == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %#v, %v; want %#v, %v", target, got, err, want, werr)
		}
		if got == &u {
			plain++
		}
	}
	if plain == 0 {
		t.Fatal("no target was taken as plain")
	}
}
