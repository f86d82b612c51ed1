package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A flagRow is one flag of a command whose flags parse into a C: all that
// the parser, --help and the README's flag tables know of it. Its default
// is the value bind gives it, shown as the flag package prints it (a
// duration in whole seconds as "60s"), or show where that says nothing (an
// empty list; a zero that means "work it out"; "off" for a bool).
type flagRow[C any] struct {
	name, arg string // --name ARG; no ARG for a bool
	help      string // lines broken by hand; "(default …)" goes at {default}, else at the end
	show      string
	bind      func(fs *flag.FlagSet, name string, c *C)
}

// newFlags registers rows on a new flag set that parses into c.
func newFlags[C any](name string, rows []flagRow[C], c *C) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, r := range rows {
		r.bind(fs, r.name, c)
	}
	return fs
}

// defaultText is row r's default as --help and the README show it; "" if
// it has none.
func (r flagRow[C]) defaultText(fs *flag.FlagSet) string {
	if r.show != "" {
		return r.show
	}
	f := fs.Lookup(r.name)
	if d, ok := flagDuration(f); ok && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s" // 60s, not 1m0s
	}
	return f.DefValue
}

// flagDuration returns f's value if f is a duration flag.
func flagDuration(f *flag.Flag) (time.Duration, bool) {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return 0, false
	}
	d, ok := g.Get().(time.Duration)
	return d, ok
}

// positiveDurations checks that every duration flag of fs but those named
// in except, a timeout all, is positive.
func positiveDurations(fs *flag.FlagSet, except ...string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if d, ok := flagDuration(f); ok && d <= 0 && err == nil && !slices.Contains(except, f.Name) {
			err = fmt.Errorf("--%s must be positive, got %v", f.Name, d)
		}
	})
	return err
}

// Layout of the flags in --help.
const (
	helpIndent = 28 // where the help text starts
	helpWidth  = 80 // where "(default …)" wraps
)

// flagUsage is the --help text of rows, one entry each.
func flagUsage[C any](rows []flagRow[C]) string {
	fs := newFlags("", rows, new(C))
	var b strings.Builder
	for _, r := range rows {
		help := r.help
		if d := r.defaultText(fs); d != "" && strings.Contains(help, "{default}") {
			help = strings.Replace(help, "{default}", "(default "+d+")", 1)
		} else if d != "" {
			help = wrapOn(help, "(default "+d+")")
		}
		for i, line := range strings.Split(help, "\n") {
			left := ""
			if i == 0 {
				left = strings.TrimSpace("--" + r.name + " " + r.arg)
			}
			fmt.Fprintf(&b, "  %-*s%s\n", helpIndent-2, left, line)
		}
	}
	return b.String()
}

// wrapOn appends unit to text's last line, or where that would pass
// helpWidth, on lines of its own, broken between words.
func wrapOn(text, unit string) string {
	last := text[strings.LastIndexByte(text, '\n')+1:]
	if helpIndent+len(last)+1+len(unit) <= helpWidth {
		return text + " " + unit
	}
	line := ""
	for _, w := range strings.Fields(unit) {
		switch {
		case line == "":
			line = w
		case helpIndent+len(line)+1+len(w) > helpWidth:
			text, line = text+"\n"+line, w
		default:
			line += " " + w
		}
	}
	return text + "\n" + line
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
func (l *listFlag) Get() any           { return []string(*l) }

// sizeFlag is a byte count with an optional K/KiB/M/MiB suffix.
type sizeFlag int64

// String writes the size as Set reads it, in MiB or KiB when it is whole.
func (s *sizeFlag) String() string {
	switch n := int64(*s); {
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	default:
		return strconv.FormatInt(n, 10)
	}
}
func (s *sizeFlag) Get() any { return int64(*s) }
func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	*s = sizeFlag(n)
	return err
}

func parseSize(v string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSpace(v)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSuffix(num, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	return n * mult, nil
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// The binders below make a row's bind from the field the flag sets and
// its default, so that a row says only what differs.

func stringFlag[C any](field func(*C) *string, def string) func(*flag.FlagSet, string, *C) {
	return func(fs *flag.FlagSet, name string, c *C) { fs.StringVar(field(c), name, def, "") }
}

func boolFlag[C any](field func(*C) *bool, def bool) func(*flag.FlagSet, string, *C) {
	return func(fs *flag.FlagSet, name string, c *C) { fs.BoolVar(field(c), name, def, "") }
}

func intFlag[C any](field func(*C) *int, def int) func(*flag.FlagSet, string, *C) {
	return func(fs *flag.FlagSet, name string, c *C) { fs.IntVar(field(c), name, def, "") }
}

func uint64Flag[C any](field func(*C) *uint64, def uint64) func(*flag.FlagSet, string, *C) {
	return func(fs *flag.FlagSet, name string, c *C) { fs.Uint64Var(field(c), name, def, "") }
}

func durationFlag[C any](field func(*C) *time.Duration, def time.Duration) func(*flag.FlagSet, string, *C) {
	return func(fs *flag.FlagSet, name string, c *C) { fs.DurationVar(field(c), name, def, "") }
}

// valueFlag binds a flag.Value whose zero value is its default.
func valueFlag[C any](field func(*C) flag.Value) func(*flag.FlagSet, string, *C) {
	return func(fs *flag.FlagSet, name string, c *C) { fs.Var(field(c), name, "") }
}
