package linuxonly

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/clusterd/clusterd"

// TestEveryLinuxPackageIsGated: every package of the module with files
// that only build on Linux imports this package, directly or through
// another of the module's packages, so a build for another system stops
// with this package's message.
func TestEveryLinuxPackageIsGated(t *testing.T) {
	linux, other := build.Default, build.Default
	linux.GOOS, other.GOOS = "linux", "darwin"
	linux.CgoEnabled, other.CgoEnabled = false, false
	imports := map[string][]string{} // as built for the other system
	var linuxOnly []string
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	err := filepath.WalkDir(root, func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); dir != root && (strings.HasPrefix(name, ".") || name == "testdata") {
			return filepath.SkipDir
		}
		lp, err := linux.ImportDir(dir, 0)
		if err != nil {
			return nil // no Go package here
		}
		path := module + filepath.ToSlash(strings.TrimPrefix(dir, root))
		op, err := other.ImportDir(dir, 0)
		if err != nil || len(op.GoFiles) < len(lp.GoFiles) {
			linuxOnly = append(linuxOnly, path)
		}
		if op != nil {
			imports[path] = op.Imports
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var gated func(string) bool
	gated = func(path string) bool {
		if path == module+"/internal/linuxonly" {
			return true
		}
		for _, imp := range imports[path] {
			if strings.HasPrefix(imp, module) && gated(imp) {
				return true
			}
		}
		return false
	}
	if len(linuxOnly) < 3 {
		t.Fatalf("found only %v with Linux-only files", linuxOnly)
	}
	for _, path := range linuxOnly {
		if !gated(path) {
			t.Errorf("%s has Linux-only files but does not import internal/linuxonly", path)
		}
	}
}
