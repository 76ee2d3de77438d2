package httpapi

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// notClientCodes are codes the walk finds that no client of this API
// receives; each says why. (The Auth emulator is not walked: it answers
// with Supabase Auth's own codes, which our client code reads.)
var notClientCodes = map[string]bool{
	"validation_failed":     true, // event-log argument checks: programming errors inside the service
	"log_closed":            true, // an append after the terminal event; the generator handles it
	"conversation_exists":   true, // store-internal id clashes (ids are server-made UUIDv7)
	"message_exists":        true,
	"invalid_status":        true, // the store refusing an impossible status: a bug, answered as internal
	"lease_missing":         true, // the store refusing a create without its generation's lease: the same
	"invalid_database_url":  true, // start-up configuration, printed by the CLI
	"invalid_path":          true,
	"sync_unavailable":      true, // the outbox worker's view of Supabase REST; retried, never answered
	"sync_rejected":         true,
	"outbox_item_not_found": true, // gymbro sync (CLI) only
}

// TestEveryCodeInTheSourceIsDocumented walks the service's source for the
// codes it can answer (Code* constants, and the code argument of
// gymbro.Errorf, gymbro.Wrap and writeProblem) and fails on one that
// docs/API_CONTRACTS.md's table lacks, so a new code cannot ship
// undocumented.
func TestEveryCodeInTheSourceIsDocumented(t *testing.T) {
	md, err := os.ReadFile("../../docs/API_CONTRACTS.md")
	if err != nil {
		t.Fatal(err)
	}
	for code, where := range codesInSource(t, "../..") {
		if notClientCodes[code] {
			continue
		}
		if !bytes.Contains(md, []byte("\n| `"+code+"` |")) {
			t.Errorf("code %s (%s) has no row in docs/API_CONTRACTS.md's code table", code, where)
		}
	}
}

// codesInSource maps each code found under root's cmd and internal trees
// (tests, test helpers and the Auth emulator left out) to where it is.
func codesInSource(t *testing.T, root string) map[string]string {
	t.Helper()
	codes := map[string]string{}
	fset := token.NewFileSet()
	for _, dir := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
				strings.Contains(path, "emulator") || strings.Contains(path, "test"+string(filepath.Separator)) || strings.Contains(path, "gymbro-load") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				for _, lit := range codeLiterals(n) {
					if code, err := strconv.Unquote(lit.Value); err == nil && code != "" {
						codes[code] = fset.Position(lit.Pos()).String()
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
	return codes
}

// codeLiterals returns the string literals n gives as a client-visible code.
func codeLiterals(n ast.Node) []*ast.BasicLit {
	lit := func(e ast.Expr) []*ast.BasicLit {
		if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
			return []*ast.BasicLit{b}
		}
		return nil
	}
	switch n := n.(type) {
	case *ast.ValueSpec: // const CodeX = "x"
		var out []*ast.BasicLit
		for i, name := range n.Names {
			if strings.HasPrefix(name.Name, "Code") && i < len(n.Values) {
				out = append(out, lit(n.Values[i])...)
			}
		}
		return out
	case *ast.CallExpr:
		name := ""
		switch f := n.Fun.(type) {
		case *ast.SelectorExpr:
			name = f.Sel.Name
		case *ast.Ident:
			name = f.Name
		}
		pos := map[string]int{"Errorf": 1, "Wrap": 2, "writeProblem": 3}[name]
		if pos > 0 && len(n.Args) > pos {
			return lit(n.Args[pos])
		}
	case *ast.KeyValueExpr: // gymbro.Error{Code: "x"}
		if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Code" {
			return lit(n.Value)
		}
	}
	return nil
}
