package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/clusterd/clusterd/master"
)

// TestFlagDefaultsAgree: the flag tables of serve and ctl, the sections of
// --help and the README's tables name the same flags with the same defaults.
func TestFlagDefaultsAgree(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out, io.Discard); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	serve, ctl := tableDefaults(serveFlags), tableDefaults(ctlFlags)
	compareDefaults(t, "--help serve flags", serve, helpDefaults(t, out.String(), "\nServe flags ("))
	compareDefaults(t, "--help ctl flags", ctl, helpDefaults(t, out.String(), "\nctl flags:"))
	compareDefaults(t, "README.md serve flags", serve, readmeDefaults(t, string(readme), "| flag | default | meaning |"))
	compareDefaults(t, "README.md ctl flags", ctl, readmeDefaults(t, string(readme), "| ctl flag | default | meaning |"))
}

// tableDefaults maps each row's flag to its default.
func tableDefaults[C any](rows []flagRow[C]) map[string]string {
	fs := newFlags("", rows, new(C))
	out := map[string]string{}
	for _, r := range rows {
		out[r.name] = r.defaultText(fs)
	}
	return out
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

// helpDefaults reads the flags section of --help that starts with title:
// each flag and the "(default …)" of its entry, lines joined.
func helpDefaults(t *testing.T, help, title string) map[string]string {
	_, section, ok := strings.Cut(help, title)
	if !ok {
		t.Fatalf("--help has no section %q", title)
	}
	section, _, _ = strings.Cut(section, "\n\n")
	entries := map[string]string{}
	var name string
	for _, line := range strings.Split(section, "\n") {
		if rest, ok := strings.CutPrefix(line, "  --"); ok {
			name, _, _ = strings.Cut(rest, " ")
			line = rest[len(name):]
		}
		if name != "" {
			entries[name] += " " + strings.Join(strings.Fields(line), " ")
		}
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

// readmeDefaults reads the README's table under header, rows of
// | `--name ARG` | default | meaning |, where a default of "none" means
// the flag has none.
func readmeDefaults(t *testing.T, readme, header string) map[string]string {
	_, table, ok := strings.Cut(readme, "\n"+header+"\n")
	if !ok {
		t.Fatalf("README.md has no table %q", header)
	}
	out := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
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

// TestSchedModesDocumented: the --sched entry of --help and of the README
// describe every mode the master takes, and no other.
func TestSchedModesDocumented(t *testing.T) {
	var help string
	for _, r := range serveFlags {
		if r.name == "sched" {
			help = r.help
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, row, _ := strings.Cut(string(readme), "\n| `--sched MODE` |")
	row, _, _ = strings.Cut(row, "\n")
	described := map[string]bool{}
	for _, line := range strings.Split(help, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 && line[0] != ' ' {
			described[f[0]] = true
		}
	}
	for _, mode := range master.SchedModes {
		if !described[mode] {
			t.Errorf("--help does not describe --sched %s", mode)
		}
		if !strings.Contains(row, "`"+mode+"`") {
			t.Errorf("the README's --sched row does not name %s", mode)
		}
		delete(described, mode)
	}
	for mode := range described {
		t.Errorf("--help describes --sched %s, which the master does not take", mode)
	}
}

// TestGoDocDefaultsAgree: the "default X" in the doc comments of
// clusterd.Options and httpcore.Config fields says what the flag table
// says for the flag that sets the field.
func TestGoDocDefaultsAgree(t *testing.T) {
	flagOf := map[string]string{ // Go field → flag
		"Options.GracefulTimeout": "graceful-timeout", "Options.ReadyTimeout": "ready-timeout",
		"Options.WorkerTimeout": "worker-timeout", "Options.LogLevel": "log-level",
		"Config.IdleTimeout": "idle-timeout", "Config.HeaderTimeout": "header-timeout",
		"Config.RequestTimeout": "request-timeout", "Config.MaxHeaderBytes": "max-header-bytes",
		"Config.MaxBodyBytes": "max-body-bytes",
	}
	want := tableDefaults(serveFlags)
	got := map[string]string{}
	for _, file := range []string{"../../clusterd.go", "../../httpcore/config.go"} {
		for field, def := range docDefaults(t, file) {
			got[field] = def
		}
	}
	for field, name := range flagOf {
		if d, ok := got[field]; !ok {
			t.Errorf("%s: no \"default …\" in its doc comment", field)
		} else if w := strings.ReplaceAll(want[name], " ", ""); d != w {
			t.Errorf("%s: doc says default %s, --%s defaults to %s", field, d, name, w)
		}
	}
}

// docDefaults maps Type.Field to the "default X" of the field's comment
// (spaces removed), for the struct types declared in file.
func docDefaults(t *testing.T, file string) map[string]string {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		for _, fld := range st.Fields.List {
			text := fld.Doc.Text() + fld.Comment.Text()
			_, def, found := strings.Cut(strings.Join(strings.Fields(text), " "), "default ")
			if !found {
				continue
			}
			if i := strings.IndexAny(def, ",;"); i >= 0 {
				def = def[:i]
			}
			def = strings.ReplaceAll(strings.TrimSuffix(def, "."), " ", "")
			for _, name := range fld.Names {
				out[ts.Name.Name+"."+name.Name] = def
			}
		}
		return false
	})
	return out
}
