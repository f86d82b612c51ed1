package rawfd

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func nonblocking(t *testing.T, fd int) bool {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

// TestKeepsBlockingMode: taking or duplicating a descriptor leaves a
// non-blocking socket non-blocking, as (*os.File).Fd would not.
func TestKeepsBlockingMode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := Of(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	if fds, err := All([]*os.File{f, f}); err != nil || len(fds) != 2 || fds[0] != fd || fds[1] != fd {
		t.Fatalf("All = %v, %v; want [%d %d]", fds, err, fd, fd)
	}
	dup, err := DupFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	dup2, err := Dup(dup)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup2)
	for _, d := range []int{fd, dup, dup2} {
		if !nonblocking(t, d) {
			t.Errorf("fd %d became blocking", d)
		}
	}
	for _, d := range []int{dup, dup2} {
		if d == fd {
			t.Errorf("duplicate %d is the original", d)
		}
		if fl, err := unix.FcntlInt(uintptr(d), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
			t.Errorf("duplicate %d is not close-on-exec: %v", d, err)
		}
	}
	_ = f.Close()
	if _, err := Of(f); err == nil {
		t.Error("Of of a closed file succeeded")
	}
	if _, err := DupFile(f); err == nil {
		t.Error("DupFile of a closed file succeeded")
	}
	if _, err := Dup(-1); err == nil {
		t.Error("Dup(-1) succeeded")
	}
}

// TestNoFdCalls: no code outside tests calls (*os.File).Fd (or any method
// named Fd without arguments): descriptors come from this package.
func TestNoFdCalls(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok && len(call.Args) == 0 {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Fd" {
					t.Errorf("%s: calls Fd, which makes the descriptor blocking; use rawfd", fset.Position(call.Pos()))
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
