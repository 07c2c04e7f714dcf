// Package docs holds no code; its test keeps the documentation honest.
//
// The convention: every ```go block in README.md and docs/*.md appears
// verbatim (the block's lines, shifted by one common indentation; blank
// lines at its ends ignored) in a _test.go file of this repository, inside
// code that `go test ./...` runs: a TestXxx function, an ExampleXxx function
// with an output comment, or a top-level function that one of those calls in
// the same file. A snippet that is a whole function (func handle(...)) counts
// when a Test or run Example in its file calls it. Snippets of a document
// live by default in docs/snippets/<document>/ (README.md: docs/snippets/readme/),
// with the few declarations they need to compile and a test that runs them
// on loopback; an Example next to the code it shows works too. A signature
// listing that cannot compile is not a ```go block: show a call instead.
package docs

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// snippet is one ```go block of a document.
type snippet struct {
	doc   string
	line  int // of the opening fence
	lines []string
}

var fence = regexp.MustCompile("^([ \t]*)```(\\S*)")

// snippets extracts the ```go blocks of one Markdown file.
func snippets(path, text string) []snippet {
	var out []snippet
	var cur *snippet
	for i, l := range strings.Split(text, "\n") {
		m := fence.FindStringSubmatch(l)
		switch {
		case cur == nil && m != nil && m[2] == "go":
			cur = &snippet{doc: path, line: i + 1}
		case cur == nil && m != nil:
			cur = &snippet{doc: path, line: -1} // another language: skipped
		case cur != nil && m != nil && m[2] == "":
			if cur.line > 0 {
				cur.lines = normalize(cur.lines)
				out = append(out, *cur)
			}
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, strings.TrimRight(l, " \t\r"))
		}
	}
	return out
}

// normalize drops blank lines at both ends and the indentation common to
// all non-blank lines.
func normalize(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	indent, first := "", true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		lead := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			indent, first = lead, false
			continue
		}
		for !strings.HasPrefix(lead, indent) {
			indent = indent[:len(indent)-1]
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimPrefix(l, indent)
		if strings.TrimSpace(l) == "" {
			out[i] = ""
		}
	}
	return out
}

// goFile is a parsed _test.go file with its lines.
type goFile struct {
	path  string
	fset  *token.FileSet
	file  *ast.File
	lines []string
	run   map[string]bool // top-level functions go test runs
}

func loadTestFiles(t *testing.T, root string) []*goFile {
	t.Helper()
	var files []*goFile
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return err
		}
		files = append(files, &goFile{path: path, fset: fset, file: f,
			lines: strings.Split(string(src), "\n"), run: runFuncs(f)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// runFuncs names the top-level functions of f that go test runs: tests,
// examples with an output comment, and functions a test or run example in
// the same file calls (one level).
func runFuncs(f *ast.File) map[string]bool {
	run := map[string]bool{}
	for _, ex := range doc.Examples(f) {
		if ex.Output != "" || ex.EmptyOutput {
			run["Example"+ex.Name] = true
		}
	}
	var roots []*ast.FuncDecl
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv != nil {
			continue
		}
		n := fd.Name.Name
		if strings.HasPrefix(n, "Test") && isTestSig(fd) {
			run[n] = true
		}
		if run[n] {
			roots = append(roots, fd)
		}
	}
	top := map[string]bool{}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
			top[fd.Name.Name] = true
		}
	}
	for _, fd := range roots {
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok && top[id.Name] {
				run[id.Name] = true
			}
			return true
		})
	}
	return run
}

func isTestSig(fd *ast.FuncDecl) bool {
	p := fd.Type.Params.List
	if len(p) != 1 || fd.Type.Results != nil {
		return false
	}
	star, ok := p[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "T"
}

// find reports where s's lines appear in g, shifted by one indentation.
func (g *goFile) find(s snippet) (line int, ok bool) {
	n := len(s.lines)
	if n == 0 {
		return 0, false
	}
next:
	for i := 0; i+n <= len(g.lines); i++ {
		first := strings.TrimRight(g.lines[i], " \t\r")
		if !strings.HasSuffix(first, s.lines[0]) {
			continue
		}
		indent := first[:len(first)-len(s.lines[0])]
		if strings.TrimLeft(indent, " \t") != "" {
			continue
		}
		for j, want := range s.lines {
			got := strings.TrimRight(g.lines[i+j], " \t\r")
			if want == "" && got == "" {
				continue
			}
			if got != indent+want {
				continue next
			}
		}
		return i + 1, true
	}
	return 0, false
}

// runs reports whether every line from..to (1-based) of g lies inside a
// top-level function go test runs.
func (g *goFile) runs(from, to int) bool {
	for l := from; l <= to; l++ {
		if strings.TrimSpace(g.lines[l-1]) == "" {
			continue
		}
		if !g.inRunFunc(l) {
			return false
		}
	}
	return true
}

func (g *goFile) inRunFunc(line int) bool {
	for _, d := range g.file.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv != nil {
			continue
		}
		start := g.fset.Position(fd.Pos()).Line
		if fd.Doc != nil {
			start = g.fset.Position(fd.Doc.Pos()).Line
		}
		if line >= start && line <= g.fset.Position(fd.End()).Line {
			return g.run[fd.Name.Name]
		}
	}
	return false
}

func TestSnippetsCompileAndRun(t *testing.T) {
	root := ".."
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append([]string{filepath.Join(root, "README.md")}, docs...)
	files := loadTestFiles(t, root)
	total := 0
	for _, d := range docs {
		text, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, d)
		for _, s := range snippets(rel, string(text)) {
			total++
			found, ran := "", false
			for _, g := range files {
				if l, ok := g.find(s); ok {
					found = g.path
					if g.runs(l, l+len(s.lines)-1) {
						ran = true
						break
					}
				}
			}
			switch {
			case found == "":
				t.Errorf("%s:%d: this ```go block appears verbatim in no _test.go file; put it in a test that runs it (see the comment atop docs/snippets_test.go):\n%s",
					s.doc, s.line, strings.Join(s.lines, "\n"))
			case !ran:
				t.Errorf("%s:%d: this ```go block is in %s but outside any Test, Example with output, or function one of those calls",
					s.doc, s.line, found)
			}
		}
	}
	if total == 0 {
		t.Fatal("found no ```go blocks: is the extraction broken?")
	}
}

// The checker itself: a block found nowhere, found only in code no test
// runs, and found in a run test.
func TestSnippetChecker(t *testing.T) {
	md := "x\n  ```go\n  a := 1\n\n  _ = a\n  ```\n```sh\ngo test\n```\n"
	ss := snippets("x.md", md)
	if len(ss) != 1 || strings.Join(ss[0].lines, "|") != "a := 1||_ = a" {
		t.Fatalf("snippets = %#v", ss)
	}
	parse := func(src string) *goFile {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "x_test.go", src, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		return &goFile{path: "x_test.go", fset: fset, file: f, lines: strings.Split(src, "\n"), run: runFuncs(f)}
	}
	cases := []struct {
		src        string
		found, ran bool
	}{
		{"package x\nfunc TestA(t *testing.T) {\n\tb := 1\n}\n", false, false},
		{"package x\nfunc helper() {\n\ta := 1\n\n\t_ = a\n}\n", true, false},
		{"package x\nfunc helper() {\n\ta := 1\n\n\t_ = a\n}\nfunc TestA(t *testing.T) { helper() }\n", true, true},
		{"package x\nfunc ExampleA() {\n\ta := 1\n\n\t_ = a\n}\n", true, false},
		{"package x\nfunc ExampleA() {\n\ta := 1\n\n\t_ = a\n\t// Output:\n}\n", true, true},
		{"package x\nfunc TestA(t *testing.T) {\n\t\ta := 1\n\n\t\t_ = a\n}\n", true, true},
		{"package x\nfunc TestA(t *testing.T) {\n\ta := 1\n\t_ = a\n}\n", false, false},
	}
	for i, c := range cases {
		g := parse(c.src)
		l, ok := g.find(ss[0])
		if ok != c.found {
			t.Errorf("case %d: found = %v, want %v", i, ok, c.found)
			continue
		}
		if ok && g.runs(l, l+len(ss[0].lines)-1) != c.ran {
			t.Errorf("case %d: runs = %v, want %v", i, !c.ran, c.ran)
		}
	}
}
