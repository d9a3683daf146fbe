// Command check validates logto-proxy's deployment material offline — no
// cluster, no Docker engine, no network — so that CI can hold it to the same
// standard as the code:
//
//   - deploy/k8s: rendered by kustomize's own library (krusty), then every
//     object validated by kubectl-validate (the Kubernetes API server's
//     schema validation of SIG CLI, with the built-in OpenAPI v3 schemas of
//     Kubernetes 1.30 it embeds), by kin-openapi against the same schemas
//     (for required fields, which kubectl-validate leaves out), and by a
//     strict decode into the k8s.io/api types (unknown or duplicate fields,
//     malformed quantities); then a few rules of our own (rules.go).
//   - docker-compose.yml: loaded by compose-go, the Compose reference loader
//     (Compose JSON schema, interpolation with deploy/compose.env.example),
//     then a few rules of our own (compose.go).
//   - deploy/Dockerfile and .dockerignore: the Dockerfile's go build command
//     run on exactly the files the ignore list leaves, and the built binary's
//     HEALTHCHECK command run against the binary itself (image.go).
//
// Run it from this directory (it is a module of its own, so that the
// service's module carries no Kubernetes or Compose dependency):
//
//	go run . -root ../..
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

func main() {
	root := flag.String("root", "../..", "the repository root")
	timeout := flag.Duration("timeout", 10*time.Minute, "bound of the whole run")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	code := run(ctx, *root, os.Stdout)
	cancel()
	os.Exit(code)
}

// run checks everything under root, reports on w and returns the exit code:
// 0 when every check passed, 1 otherwise.
func run(ctx context.Context, root string, w io.Writer) int {
	root, err := filepath.Abs(root)
	if err != nil {
		fmt.Fprintln(w, "FAIL", err)
		return 1
	}
	facts, err := readAppFacts(root)
	if err != nil {
		fmt.Fprintln(w, "FAIL reading the service's settings:", err)
		return 1
	}
	code := 0
	for _, c := range []struct {
		name string
		run  func() []error
	}{
		{"kubernetes (deploy/k8s)", func() []error { return checkKubernetes(ctx, root+"/deploy/k8s", facts) }},
		{"compose (docker-compose.yml)", func() []error {
			return checkCompose(ctx, root+"/docker-compose.yml", root+"/deploy/compose.env.example", facts)
		}},
		{"image (deploy/Dockerfile, .dockerignore)", func() []error { return checkImage(ctx, root, facts) }},
	} {
		problems := c.run()
		if len(problems) == 0 {
			fmt.Fprintln(w, "ok  ", c.name)
			continue
		}
		code = 1
		fmt.Fprintln(w, "FAIL", c.name)
		for _, p := range problems {
			fmt.Fprintln(w, "    -", p)
		}
	}
	return code
}
