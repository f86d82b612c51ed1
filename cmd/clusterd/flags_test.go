package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

// TestFlagDefaultsAgree: the flag table, --help and the README's flag table
// name the same serve flags with the same defaults.
func TestFlagDefaultsAgree(t *testing.T) {
	fs := newServeFlags(serveFlags, new(serveConfig))
	want := map[string]string{}
	for _, r := range serveFlags {
		want[r.name] = r.defaultText(fs)
	}
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out, io.Discard); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	compareDefaults(t, "--help", want, helpDefaults(t, out.String()))
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	compareDefaults(t, "README.md", want, readmeDefaults(string(readme)))
}

func compareDefaults(t *testing.T, where string, want, got map[string]string) {
	t.Helper()
	for name, def := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: no --%s", where, name)
		} else if g != def {
			t.Errorf("%s: --%s defaults to %q, the flag to %q", where, name, g, def)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: --%s is not a serve flag", where, name)
		}
	}
}

// helpDefaults reads the flags section of --help: each flag and the
// "(default …)" of its entry, lines joined.
func helpDefaults(t *testing.T, help string) map[string]string {
	_, section, ok := strings.Cut(help, "\nFlags (")
	if !ok {
		t.Fatal("--help has no flags section")
	}
	section, _, _ = strings.Cut(section, "\n\n")
	entries := map[string]string{}
	var name string
	for _, line := range strings.Split(section, "\n")[2:] {
		if rest, ok := strings.CutPrefix(line, "  --"); ok {
			name, _, _ = strings.Cut(rest, " ")
			line = rest[len(name):]
		}
		entries[name] += " " + strings.Join(strings.Fields(line), " ")
	}
	out := map[string]string{}
	for name, text := range entries {
		out[name] = ""
		if i := strings.LastIndex(text, "(default "); i >= 0 {
			out[name] = text[i+len("(default ") : i+closingParen(text[i:])]
		}
	}
	return out
}

// closingParen is the index of the ")" closing the "(" s starts with.
func closingParen(s string) int {
	depth := 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return len(s)
}

// readmeDefaults reads the README's flag table: | `--name ARG` | default | … |,
// where a default of "none" means the flag has none.
func readmeDefaults(readme string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(readme, "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| `--") || len(cells) < 3 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(cells[0], "| `--"), " ")
		def := strings.ReplaceAll(cells[1], "`", "")
		if def == "none" {
			def = ""
		}
		out[strings.TrimSuffix(name, "`")] = def
	}
	return out
}
