package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// appFacts is what the deployment material must agree with, read from the
// service's source rather than copied, so that a renamed setting or a longer
// shutdown fails this check instead of a deployment.
type appFacts struct {
	// settings maps every environment variable cmd/logto-proxy reads to its
	// default ("" when it has none).
	settings map[string]string
	// shutdown bounds the graceful shutdown after SIGTERM (main.go).
	shutdown time.Duration
}

// readAppFacts parses cmd/logto-proxy: the settings table of config.go (every
// `env:` of a setting literal, with its `def:`) and the shutdown timeout of
// main.go.
func readAppFacts(root string) (appFacts, error) {
	dir := filepath.Join(root, "cmd", "logto-proxy")
	facts := appFacts{settings: map[string]string{}}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(dir, "config.go"), nil, 0)
	if err != nil {
		return facts, fmt.Errorf("parse settings: %w", err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		fields := map[string]string{}
		for _, e := range lit.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key, ok1 := kv.Key.(*ast.Ident)
			val, ok2 := kv.Value.(*ast.BasicLit)
			if ok1 && ok2 && val.Kind == token.STRING {
				if s, err := strconv.Unquote(val.Value); err == nil {
					fields[key.Name] = s
				}
			}
		}
		if env, ok := fields["env"]; ok {
			facts.settings[env] = fields["def"]
		}
		return true
	})
	if _, ok := facts.settings["LISTEN_ADDR"]; !ok {
		return facts, fmt.Errorf("no LISTEN_ADDR setting found in %s; deploy/check reads the settings table there", filepath.Join(dir, "config.go"))
	}

	main, err := os.ReadFile(filepath.Join(dir, "main.go"))
	if err != nil {
		return facts, fmt.Errorf("read shutdown timeout: %w", err)
	}
	m := regexp.MustCompile(`shutdownCtx, cancel := context\.WithTimeout\(context\.Background\(\), (\d+) ?\* ?time\.Second\)`).FindSubmatch(main)
	if m == nil {
		return facts, fmt.Errorf("no shutdown timeout found in %s; deploy/check reads it to check terminationGracePeriodSeconds", filepath.Join(dir, "main.go"))
	}
	secs, _ := strconv.Atoi(string(m[1]))
	facts.shutdown = time.Duration(secs) * time.Second
	return facts, nil
}

// knownVariable reports whether the service or the Go runtime reads name;
// the manifests may set nothing else.
func (f appFacts) knownVariable(name string) bool {
	switch name {
	case "GOMEMLIMIT", "GOGC", "GOMAXPROCS", "GODEBUG":
		return true
	}
	_, ok := f.settings[name]
	return ok
}
