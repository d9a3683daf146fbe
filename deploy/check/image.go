package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-shellwords"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// checkImage checks deploy/Dockerfile and .dockerignore without a Docker
// engine: the Dockerfile's rules (stages, user, HEALTHCHECK), then its go
// build command run on exactly the files .dockerignore leaves in the build
// context (with moby's own pattern matcher), then its HEALTHCHECK command
// run against the built binary.
func checkImage(ctx context.Context, root string, facts appFacts) []error {
	df, err := parseDockerfile(filepath.Join(root, proxyDockerfile))
	if err != nil {
		return []error{err}
	}
	problems := df.rules()
	if len(problems) > 0 {
		return problems
	}
	tmp, err := os.MkdirTemp("", "logto-proxy-image-")
	if err != nil {
		return []error{err}
	}
	defer os.RemoveAll(tmp)
	contextDir := filepath.Join(tmp, "context")
	if problems := buildContext(root, contextDir); len(problems) > 0 {
		return problems
	}
	bin := filepath.Join(tmp, "logto-proxy")
	if err := df.build(ctx, contextDir, bin); err != nil {
		return []error{err}
	}
	if err := checkHealthcheck(ctx, bin, df.healthcheck[1:], facts); err != nil {
		return []error{err}
	}
	return nil
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// dockerfile is the part of a Dockerfile the check needs.
type dockerfile struct {
	stages      [][]instruction // split at FROM
	healthcheck []string        // the final stage's HEALTHCHECK CMD, exec form
	entrypoint  []string
}

// parseDockerfile reads the instructions (comments and parser directives
// dropped, continuation lines joined).
func parseDockerfile(file string) (*dockerfile, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	df := &dockerfile{}
	var cur *instruction
	for i, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == nil && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur == nil {
			cmd, args, _ := strings.Cut(trimmed, " ")
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(cmd)}
			trimmed = args
		} else if strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		more := strings.HasSuffix(trimmed, "\\")
		cur.args = strings.TrimSpace(cur.args + " " + strings.TrimSuffix(trimmed, "\\"))
		if more {
			continue
		}
		if cur.cmd == "FROM" {
			df.stages = append(df.stages, nil)
		}
		if len(df.stages) == 0 {
			return nil, fmt.Errorf("%s:%d: %s before FROM", filepath.Base(file), cur.line, cur.cmd)
		}
		df.stages[len(df.stages)-1] = append(df.stages[len(df.stages)-1], *cur)
		cur = nil
	}
	if len(df.stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM", filepath.Base(file))
	}
	for _, in := range df.stages[len(df.stages)-1] {
		switch in.cmd {
		case "HEALTHCHECK":
			// HEALTHCHECK [--flags] CMD ["exec", "form"]
			_, cmd, ok := strings.Cut(in.args, "CMD ")
			if !ok || json.Unmarshal([]byte(cmd), &df.healthcheck) != nil {
				return nil, fmt.Errorf("%s:%d: HEALTHCHECK must be `CMD [\"exec\", \"form\"]` (the image has no shell)", filepath.Base(file), in.line)
			}
		case "ENTRYPOINT":
			if json.Unmarshal([]byte(in.args), &df.entrypoint) != nil {
				return nil, fmt.Errorf("%s:%d: ENTRYPOINT must be in exec form (the image has no shell)", filepath.Base(file), in.line)
			}
		}
	}
	return df, nil
}

// rules checks the stages: a pinned build image, a final stage on a pinned
// base that runs as a numeric non-root user with a HEALTHCHECK running the
// entrypoint's binary with -healthcheck.
func (df *dockerfile) rules() []error {
	var problems []error
	fail := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("%s: %s", proxyDockerfile, fmt.Sprintf(format, args...)))
	}
	if len(df.stages) < 2 {
		fail("want a multi-stage build (a build stage and a run stage)")
	}
	for _, st := range df.stages {
		image, _, _ := strings.Cut(st[0].args, " ")
		if !pinnedImage(image) {
			fail("line %d: FROM %s must name a tag other than latest", st[0].line, image)
		}
	}
	final := df.stages[len(df.stages)-1]
	user := ""
	for _, in := range final {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || uid == "root" || strings.Trim(uid, "0123456789") != "" {
		fail("the final stage must set USER to a numeric non-root uid (Kubernetes' runAsNonRoot can only verify a number), got %q", user)
	}
	if len(df.entrypoint) == 0 {
		fail("the final stage has no ENTRYPOINT")
	}
	if len(df.healthcheck) != 2 || len(df.entrypoint) == 0 || df.healthcheck[0] != df.entrypoint[0] || df.healthcheck[1] != "-healthcheck" {
		fail("HEALTHCHECK must be CMD [%q, \"-healthcheck\"], got %q", strings.Join(df.entrypoint, " "), df.healthcheck)
	}
	if _, _, err := df.goBuild(); err != nil {
		fail("%v", err)
	}
	return problems
}

// goBuild finds the build stage's `go build` command and the environment it
// runs with (the stage's ENV instructions).
func (df *dockerfile) goBuild() (args, env []string, err error) {
	for _, st := range df.stages[:len(df.stages)-1] {
		env = nil
		for _, in := range st {
			switch in.cmd {
			case "ENV":
				words, err := shellwords.Parse(in.args)
				if err != nil {
					return nil, nil, fmt.Errorf("line %d: %w", in.line, err)
				}
				env = append(env, words...)
			case "RUN":
				i := strings.Index(in.args, "go build ")
				if i < 0 {
					continue
				}
				args, err := shellwords.Parse(in.args[i:])
				if err != nil {
					return nil, nil, fmt.Errorf("line %d: %w", in.line, err)
				}
				if !slices.Contains(args, "-trimpath") || !slices.Contains(env, "CGO_ENABLED=0") {
					return nil, nil, fmt.Errorf("line %d: the binary must be static and reproducible: ENV CGO_ENABLED=0 and go build -trimpath", in.line)
				}
				return args, env, nil
			}
		}
	}
	return nil, nil, errors.New("no `go build` in a build stage")
}

// build runs the Dockerfile's go build command in dir, writing the binary
// to out instead of the image's path.
func (df *dockerfile) build(ctx context.Context, dir, out string) error {
	args, env, err := df.goBuild()
	if err != nil {
		return err
	}
	if i := slices.Index(args, "-o"); i >= 0 && i+1 < len(args) {
		args[i+1] = out
	} else {
		return fmt.Errorf("%s: go build has no -o", proxyDockerfile)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args[1:]...)
	cmd.Dir = dir
	// The machine's Go and module cache, the Dockerfile's settings, no
	// workspace and no toolchain download.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=")
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s's go build on the .dockerignore'd context failed (%w):\n%s", proxyDockerfile, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// buildContext copies into dst the files of root that .dockerignore leaves
// in the build context, after checking that it leaves out what must never
// be sent to a Docker engine.
func buildContext(root, dst string) []error {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return []error{err}
	}
	patterns, err := ignorefile.ReadAll(f)
	_ = f.Close()
	if err != nil {
		return []error{fmt.Errorf(".dockerignore: %w", err)}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return []error{fmt.Errorf(".dockerignore: %w", err)}
	}
	var problems []error
	for _, secret := range []string{".git/config", ".env", ".env.local", "deploy/compose.env.example"} {
		if ok, err := pm.MatchesOrParentMatches(secret); err != nil || !ok {
			problems = append(problems, fmt.Errorf(".dockerignore: %s must be excluded from the build context", secret))
		}
	}
	if len(problems) > 0 {
		return problems
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		excluded, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && excluded && !pm.Exclusions():
			return filepath.SkipDir
		case d.IsDir() || excluded || !d.Type().IsRegular():
			return nil
		}
		return copyFile(p, filepath.Join(dst, filepath.FromSlash(rel)))
	})
	if err != nil {
		return []error{fmt.Errorf("build context: %w", err)}
	}
	return nil
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// checkHealthcheck runs the built binary as the image's HEALTHCHECK would:
// it must fail while nothing listens on LISTEN_ADDR, and succeed once the
// service (here in -demo mode, needing nothing else) is up on it.
func checkHealthcheck(ctx context.Context, bin string, args []string, facts appFacts) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_ = ln.Close()
	// The image's form of LISTEN_ADDR (":port"); the healthcheck turns it
	// into 127.0.0.1:port.
	_, defPort, _ := net.SplitHostPort(facts.settings["LISTEN_ADDR"])
	listen := strings.Replace(facts.settings["LISTEN_ADDR"], defPort, port, 1)
	probe := func() error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(pctx, bin, args...)
		cmd.Env = []string{"LISTEN_ADDR=" + listen}
		return cmd.Run()
	}
	if probe() == nil {
		return fmt.Errorf("HEALTHCHECK %q succeeded while nothing listens on %s", args, listen)
	}

	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	svc := exec.CommandContext(runCtx, bin, "-demo")
	// Loopback only; embedded Redis (never CI's shared server).
	svc.Env = []string{"LISTEN_ADDR=127.0.0.1:" + port, "REDIS_URL=", "HOME=" + os.TempDir()}
	var stderr bytes.Buffer
	svc.Stdout, svc.Stderr = io.Discard, &stderr
	if err := svc.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- svc.Wait() }()
	defer func() {
		_ = svc.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-runCtx.Done():
			_ = svc.Process.Kill()
		}
	}()
	for {
		if err := probe(); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("logto-proxy -demo exited before its HEALTHCHECK passed (%v):\n%s", err, tail(stderr.String(), 2000))
		case <-runCtx.Done():
			return fmt.Errorf("HEALTHCHECK %q never passed against logto-proxy -demo on %s: %w", args, listen, runCtx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
