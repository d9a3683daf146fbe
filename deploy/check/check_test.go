package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The repository's own material passes, and each kind of mistake the checks
// exist for — made in a copy of the real files — fails with a message that
// says what is wrong. The broken copies prove that every layer can fail:
// kubectl-validate, the OpenAPI schema, the strict decode, kustomize,
// compose-go, and our rules.

const repoRoot = "../.."

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func testFacts(t *testing.T) appFacts {
	t.Helper()
	facts, err := readAppFacts(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	return facts
}

func TestRepositoryPasses(t *testing.T) {
	var out bytes.Buffer
	if code := run(testContext(t), repoRoot, &out); code != 0 {
		t.Fatalf("deploy/check fails on the repository (exit %d):\n%s", code, out.String())
	}
	if got := strings.Count(out.String(), "ok  "); got != 3 {
		t.Fatalf("want 3 checks passed, got:\n%s", out.String())
	}
}

func TestAppFacts(t *testing.T) {
	facts := testFacts(t)
	if facts.shutdown <= 0 {
		t.Fatalf("shutdown timeout = %s", facts.shutdown)
	}
	for _, name := range []string{"LISTEN_ADDR", "LOGTO_ENDPOINT", "JWT_SECRET", "REDIS_URL", "LOGTO_WEBHOOK_SIGNING_KEY"} {
		if !facts.knownVariable(name) {
			t.Errorf("setting %s not found in cmd/logto-proxy/config.go", name)
		}
	}
	if facts.knownVariable("LOGTO_ENDPIONT") {
		t.Error("a misspelt setting is known")
	}
	if facts.settings["LISTEN_ADDR"] != ":8080" {
		t.Errorf("LISTEN_ADDR default = %q", facts.settings["LISTEN_ADDR"])
	}
}

// edit is one mistake: replace old (which must occur exactly once) with new
// in file, relative to a copied tree.
type edit struct {
	file, old, new string
}

func applyEdits(t *testing.T, root string, edits ...edit) {
	t.Helper()
	for _, e := range edits {
		p := filepath.Join(root, e.file)
		raw, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) && e.old == "" {
			raw, err = nil, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.old != "" && strings.Count(string(raw), e.old) != 1 {
			t.Fatalf("%s: %q occurs %d times, want once (the test is stale)", e.file, e.old, strings.Count(string(raw), e.old))
		}
		s := strings.Replace(string(raw), e.old, e.new, 1)
		if e.old == "" {
			s = e.new
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// copyTree copies the regular files of src under dst, leaving out .git and
// files over 1 MiB (built binaries).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil || d.IsDir() || !d.Type().IsRegular() || info.Size() > 1<<20 {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		return copyFile(p, filepath.Join(dst, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func wantProblem(t *testing.T, problems []error, want string) {
	t.Helper()
	var all []string
	for _, p := range problems {
		if strings.Contains(p.Error(), want) {
			return
		}
		all = append(all, p.Error())
	}
	t.Fatalf("want a problem containing %q, got %d:\n%s", want, len(problems), strings.Join(all, "\n"))
}

func TestKubernetesCatches(t *testing.T) {
	facts := testFacts(t)
	const readiness = `          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
`
	for _, tc := range []struct {
		name string
		edit edit
		want string
	}{
		// The validators.
		{"unknown field (kubectl-validate)", edit{"deployment.yaml", "  revisionHistoryLimit: 5\n", "  revisionHistoryLimit: 5\n  paused2: true\n"},
			"kubectl-validate: spec.paused2: Invalid value: value provided for unknown field"},
		{"wrong type (kubectl-validate)", edit{"deployment.yaml", "  replicas: 3 #", "  replicas: three #"},
			"spec.replicas in body must be of type integer"},
		{"missing required field (OpenAPI schema)", edit{"deployment.yaml", "        - name: logto-proxy\n          image:", "        - image:"},
			`OpenAPI schema: Error at "/spec": doesn't match schema due to: Error at "/template"`},
		{"malformed quantity (strict decode)", edit{"deployment.yaml", "memory: 1Gi", "memory: 1Gb"},
			"strict decode: quantities must match the regular expression"},
		{"broken kustomization (kustomize)", edit{"kustomization.yaml", "  - pdb.yaml\n", "  - pdb.yaml\n  - ingress.yaml\n"},
			"kustomize:"},
		// Our rules.
		{"no readiness probe", edit{"deployment.yaml", readiness, ""}, "readinessProbe: missing (want GET /readyz)"},
		{"readiness on /healthz", edit{"deployment.yaml", "              path: /readyz", "              path: /healthz"}, "readinessProbe: must GET /readyz"},
		{"two replicas", edit{"deployment.yaml", "  replicas: 3 #", "  replicas: 2 #"}, "replicas must be 3"},
		{"PDB selects nothing", edit{"pdb.yaml", "  selector:\n    matchLabels:\n      app.kubernetes.io/name: logto-proxy", "  selector:\n    matchLabels:\n      app.kubernetes.io/name: logto-proxi"},
			"PodDisruptionBudget/logto-proxy: selector does not select the Deployment's pods"},
		{"PDB blocks drains", edit{"pdb.yaml", "  maxUnavailable: 1", "  maxUnavailable: 0"}, "allows no disruption"},
		{"Service misses the port", edit{"service.yaml", "targetPort: http", "targetPort: metrics"}, "targets metrics, which is not the container's http port"},
		{"HPA targets another Deployment", edit{"hpa.yaml", "    name: logto-proxy\n  minReplicas", "    name: logto-proxy-v2\n  minReplicas"}, "scaleTargetRef must be apps/v1 Deployment logto-proxy"},
		{"misspelt setting", edit{"configmap.yaml", "  LOG_LEVEL: info", "  LOG_LEVL: info"}, "environment variable LOG_LEVL is not a setting"},
		{"writable root", edit{"deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"}, "must set readOnlyRootFilesystem: true"},
		{"capabilities kept", edit{"deployment.yaml", "drop: [ALL]", "drop: [NET_RAW]"}, "must drop ALL capabilities"},
		{"grace shorter than shutdown", edit{"deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 15"}, "terminationGracePeriodSeconds 15 is shorter"},
		{"GOMEMLIMIT over the limit", edit{"deployment.yaml", "value: 900MiB", "value: 2GiB"}, "GOMEMLIMIT 2GiB must stay below limits.memory"},
		{"no memory limit", edit{"deployment.yaml", "              memory: 1Gi\n", ""}, "needs both a request and a limit for memory"},
		{"image on latest", edit{"kustomization.yaml", `newTag: "0.1.0"`, `newTag: latest`}, "must name a tag other than latest"},
		{"manifest not in the kustomization", edit{"ingress.yaml", "", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"}, "ingress.yaml: not listed in kustomization.yaml's resources"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyTree(t, filepath.Join(repoRoot, "deploy", "k8s"), dir)
			applyEdits(t, dir, tc.edit)
			wantProblem(t, checkKubernetes(testContext(t), dir, facts), tc.want)
		})
	}

	t.Run("an unchanged copy passes", func(t *testing.T) {
		dir := t.TempDir()
		copyTree(t, filepath.Join(repoRoot, "deploy", "k8s"), dir)
		applyEdits(t, dir, edit{"deployment.yaml", "            periodSeconds: 10\n", "            periodSeconds: 10 # a comment\n"})
		if problems := checkKubernetes(testContext(t), dir, facts); len(problems) > 0 {
			t.Fatalf("the copy fails: %v", problems)
		}
	})
}

// composeTree copies what the Compose file refers to.
func composeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{"docker-compose.yml", "deploy/compose.env.example", "deploy/Dockerfile"} {
		if err := copyFile(filepath.Join(repoRoot, p), filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	copyTree(t, filepath.Join(repoRoot, "deploy", "prometheus"), filepath.Join(dir, "deploy", "prometheus"))
	copyTree(t, filepath.Join(repoRoot, "deploy", "grafana"), filepath.Join(dir, "deploy", "grafana"))
	return dir
}

func TestComposeCatches(t *testing.T) {
	facts := testFacts(t)
	check := func(t *testing.T, dir string) []error {
		return checkCompose(testContext(t), filepath.Join(dir, "docker-compose.yml"), filepath.Join(dir, "deploy", "compose.env.example"), facts)
	}
	t.Run("an unchanged copy passes", func(t *testing.T) {
		if problems := check(t, composeTree(t)); len(problems) > 0 {
			t.Fatalf("the copy fails: %v", problems)
		}
	})
	for _, tc := range []struct {
		name string
		edit edit
		want string
	}{
		// compose-go.
		{"unknown key (Compose schema)", edit{"docker-compose.yml", "    command: [\"redis-server\"", "    restat: always\n    command: [\"redis-server\""}, "docker-compose.yml: services.redis.restat false schema"},
		{"required variable missing (interpolation)", edit{"deploy/compose.env.example", "\nJWT_SECRET=\n", "\n"}, "JWT_SECRET"},
		{"undefined dependency (consistency)", edit{"docker-compose.yml", "      redis:\n        condition: service_healthy\n    environment:", "      rediz:\n        condition: service_healthy\n    environment:"}, "rediz"},
		// Our rules.
		{"variable not documented", edit{"deploy/compose.env.example", "\nLOG_LEVEL=info\n", "\n"}, "${LOG_LEVEL} is used but not listed in compose.env.example"},
		{"unpinned image", edit{"docker-compose.yml", "image: redis:7.4.5-alpine", "image: redis"}, `service redis: image "redis" must name a tag`},
		{"mount source missing", edit{"docker-compose.yml", "./deploy/prometheus:/etc/prometheus:ro", "./deploy/prometheus-rules:/etc/prometheus:ro"}, "bind mount source"},
		{"config file not mounted", edit{"docker-compose.yml", "--config.file=/etc/prometheus/prometheus.yml", "--config.file=/etc/prometheus/prom.yml"}, "/etc/prometheus/prom.yml"},
		{"issuer differs from Logto's", edit{"docker-compose.yml", "LOGTO_ENDPOINT: http://logto.localhost:3001", "LOGTO_ENDPOINT: http://logto:3001"}, "differs from Logto's ENDPOINT"},
		{"issuer host unreachable", edit{"docker-compose.yml", "        aliases: [logto.localhost]", "        aliases: [logto.local]"}, "host is not the Logto service's name or one of its network aliases"},
		{"misspelt setting", edit{"docker-compose.yml", "LOG_LEVEL: ${LOG_LEVEL:-info}", "LOGLEVEL: ${LOG_LEVEL:-info}"}, "environment variable LOGLEVEL is not a setting"},
		{"waits for a start, not health", edit{"docker-compose.yml", "      redis:\n        condition: service_healthy\n    environment:", "      redis:\n        condition: service_started\n    environment:"}, "depends_on redis must wait for condition service_healthy"},
		{"port on every interface", edit{"docker-compose.yml", `"127.0.0.1:8080:8080"`, `"8080:8080"`}, "publish on 127.0.0.1 only"},
		{"Prometheus scrapes elsewhere", edit{"deploy/prometheus/prometheus.yml", "- logto-proxy:8080", "- logto-proxy:9090"}, "does not scrape logto-proxy:8080"},
		{"dashboards not mounted where provisioned", edit{"docker-compose.yml", ":/var/lib/grafana/dashboards:ro", ":/var/lib/grafana/dash:ro"}, "reads dashboards from /var/lib/grafana/dashboards"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := composeTree(t)
			applyEdits(t, dir, tc.edit)
			wantProblem(t, check(t, dir), tc.want)
		})
	}
}

func TestDockerfileCatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit edit
		want string
	}{
		{"root user", edit{"deploy/Dockerfile", "USER 65532:65532", "USER nonroot:nonroot"}, "numeric non-root uid"},
		{"no healthcheck", edit{"deploy/Dockerfile", `CMD ["/logto-proxy", "-healthcheck"]`, `CMD ["/logto-proxy", "-version"]`}, "HEALTHCHECK must be"},
		{"shell-form healthcheck", edit{"deploy/Dockerfile", `CMD ["/logto-proxy", "-healthcheck"]`, `CMD /logto-proxy -healthcheck`}, "exec"},
		{"cgo", edit{"deploy/Dockerfile", "ENV CGO_ENABLED=0 ", "ENV "}, "ENV CGO_ENABLED=0 and go build -trimpath"},
		{"unpinned base", edit{"deploy/Dockerfile", "FROM golang:1.26.8 AS build", "FROM golang AS build"}, "FROM golang must name a tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := copyFile(filepath.Join(repoRoot, proxyDockerfile), filepath.Join(dir, proxyDockerfile)); err != nil {
				t.Fatal(err)
			}
			applyEdits(t, dir, tc.edit)
			df, err := parseDockerfile(filepath.Join(dir, proxyDockerfile))
			var problems []error
			if err != nil {
				problems = []error{err}
			} else {
				problems = df.rules()
			}
			wantProblem(t, problems, tc.want)
		})
	}
}

func TestDockerignoreCatches(t *testing.T) {
	facts := testFacts(t)
	t.Run("secrets sent to the engine", func(t *testing.T) {
		dir := t.TempDir()
		applyEdits(t, dir, edit{".dockerignore", "", ".git\n"})
		wantProblem(t, buildContext(dir, t.TempDir()), ".dockerignore: .env must be excluded from the build context")
	})
	t.Run("a file the build needs left out", func(t *testing.T) {
		// The whole repository (its go build runs on the copy), with the
		// embedded OpenAPI document ignored.
		dir := t.TempDir()
		copyTree(t, repoRoot, dir)
		applyEdits(t, dir, edit{".dockerignore", "**/testdata/\n", "**/testdata/\nproxy/*.yaml\n"})
		wantProblem(t, checkImage(testContext(t), dir, facts), "openapi.yaml")
	})
}

func TestHealthcheckCanFail(t *testing.T) {
	// A binary that is not the service: its "healthcheck" never succeeds,
	// and the check says so instead of waiting forever.
	facts := testFacts(t)
	ctx, cancel := context.WithTimeout(testContext(t), 30*time.Second)
	defer cancel()
	err := checkHealthcheck(ctx, "/bin/false", nil, facts)
	if err == nil || !strings.Contains(err.Error(), "exited before its HEALTHCHECK passed") {
		t.Fatalf("want the healthcheck to fail against /bin/false, got %v", err)
	}
}

func TestParseGoMemLimit(t *testing.T) {
	for in, want := range map[string]int64{"900MiB": 900 << 20, "1GiB": 1 << 30, "12345": 12345, "2KiB": 2048, "10B": 10} {
		if got, err := parseGoMemLimit(in); err != nil || got != want {
			t.Errorf("parseGoMemLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1GB", "-1MiB", "MiB"} {
		if _, err := parseGoMemLimit(in); err == nil {
			t.Errorf("parseGoMemLimit(%q) accepted", in)
		}
	}
}

func TestPinnedImage(t *testing.T) {
	for ref, want := range map[string]bool{
		"redis:7.4.5-alpine": true, "redis": false, "redis:latest": false,
		"localhost:5000/redis": false, "localhost:5000/redis:7": true,
		"gcr.io/distroless/static-debian12:nonroot": true, "x@sha256:abc": true,
	} {
		if got := pinnedImage(ref); got != want {
			t.Errorf("pinnedImage(%q) = %v, want %v", ref, got, want)
		}
	}
}
