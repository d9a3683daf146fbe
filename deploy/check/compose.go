package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// proxyDockerfile is the Dockerfile the Compose stack must build logto-proxy
// with, relative to the repository root.
const proxyDockerfile = "deploy/Dockerfile"

// checkCompose loads the Compose file with compose-go — the reference
// implementation of the Compose specification that docker compose itself
// uses: JSON-schema validation (no unknown keys), interpolation, the
// consistency checks — with the example environment file, then applies our
// rules to the loaded project.
func checkCompose(ctx context.Context, file, envFile string, facts appFacts) []error {
	env, err := dotenv.GetEnvFromFile(map[string]string{}, []string{envFile})
	if err != nil {
		return []error{fmt.Errorf("%s: %w", filepath.Base(envFile), err)}
	}
	file, err = filepath.Abs(file)
	if err != nil {
		return []error{err}
	}
	dir := filepath.Dir(file)
	details := types.ConfigDetails{WorkingDir: dir, ConfigFiles: []types.ConfigFile{{Filename: file}}, Environment: env}
	named := func(o *loader.Options) { o.SetProjectName("logto-proxy", true) }

	// Every variable the file uses is documented in the example, whether
	// it is required or has a default.
	var problems []error
	model, err := loader.LoadModelWithContext(ctx, details, named, func(o *loader.Options) {
		o.SkipInterpolation, o.SkipValidation = true, true
	})
	if err != nil {
		return []error{fmt.Errorf("compose-go: %w", err)}
	}
	for _, name := range sortedKeys(template.ExtractVariables(model, template.DefaultPattern)) {
		if _, ok := env[name]; !ok {
			problems = append(problems, fmt.Errorf("${%s} is used but not listed in %s", name, filepath.Base(envFile)))
		}
	}

	// Then load it as docker compose up would, once the operator has filled
	// in the example's empty values.
	filled := types.Mapping{}
	for k, v := range env {
		if v == "" {
			v = "placeholder-" + strings.ToLower(k)
		}
		filled[k] = v
	}
	details.Environment = filled
	project, err := loader.LoadWithContext(ctx, details, named)
	if err != nil {
		return append(problems, fmt.Errorf("compose-go: %w", err))
	}
	c := &composeRun{project: project, dir: dir, facts: facts}
	c.rules()
	return append(problems, c.problems...)
}

// composeRun collects the problems of one check of a loaded project.
type composeRun struct {
	project  *types.Project
	dir      string
	facts    appFacts
	problems []error
}

func (c *composeRun) fail(where, format string, args ...any) {
	c.problems = append(c.problems, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
}

func (c *composeRun) rules() {
	var proxy *types.ServiceConfig
	for _, name := range sortedKeys(c.project.Services) {
		svc := c.project.Services[name]
		where := "service " + name
		if !pinnedImage(svc.Image) {
			c.fail(where, "image %q must name a tag other than latest", svc.Image)
		}
		for _, p := range svc.Ports {
			if p.HostIP != "127.0.0.1" {
				c.fail(where, "port %d is published on %q; publish on 127.0.0.1 only", p.Target, p.HostIP)
			}
		}
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(c.abs(v.Source)); err != nil {
					c.fail(where, "bind mount source %s: %v", v.Source, err)
				}
			}
		}
		for _, arg := range svc.Command {
			if file, ok := strings.CutPrefix(arg, "--config.file="); ok {
				c.mountedFile(where, svc, file)
			}
		}
		if svc.Build != nil && filepath.ToSlash(c.rel(filepath.Join(svc.Build.Context, svc.Build.Dockerfile))) == proxyDockerfile {
			proxy = &svc
		}
	}
	if proxy == nil {
		c.fail("services", "none is built from %s", proxyDockerfile)
		return
	}
	c.proxy(*proxy)
	c.grafanaDashboards()
}

// proxy checks the logto-proxy service: its settings, what it waits for, and
// that it reaches Logto under Logto's issuer name.
func (c *composeRun) proxy(svc types.ServiceConfig) {
	where := "service " + svc.Name
	env := map[string]string{}
	for k, v := range svc.Environment {
		if !c.facts.knownVariable(k) {
			c.fail(where, "environment variable %s is not a setting of cmd/logto-proxy (config.go)", k)
		}
		if v != nil {
			env[k] = *v
		}
	}
	for _, k := range []string{"LOGTO_ENDPOINT", "LOGTO_M2M_APP_ID", "LOGTO_M2M_APP_SECRET", "JWT_SECRET"} {
		if _, ok := env[k]; !ok {
			c.fail(where, "required setting %s is not in its environment", k)
		}
	}
	for _, dep := range sortedKeys(svc.DependsOn) {
		target, ok := c.project.Services[dep]
		switch {
		case svc.DependsOn[dep].Condition != types.ServiceConditionHealthy:
			c.fail(where, "depends_on %s must wait for condition service_healthy", dep)
		case ok && (target.HealthCheck == nil || target.HealthCheck.Disable):
			c.fail(where, "depends_on %s, which has no healthcheck", dep)
		}
	}

	// The proxy verifies service tokens against LOGTO_ENDPOINT + /oidc, and
	// Logto issues them under its ENDPOINT: they must be the same URL, and
	// its host must reach Logto inside the Compose network.
	logto, ok := c.serviceByImage("svhd/logto")
	if !ok {
		c.fail("services", "no Logto service (image svhd/logto)")
		return
	}
	endpoint := env["LOGTO_ENDPOINT"]
	if issuer := logto.Environment["ENDPOINT"]; issuer == nil || *issuer != endpoint {
		c.fail(where, "LOGTO_ENDPOINT %q differs from Logto's ENDPOINT: Logto-issued tokens would carry another issuer", endpoint)
	}
	if u, err := url.Parse(endpoint); err != nil || !c.reaches(logto, u.Hostname()) {
		c.fail(where, "LOGTO_ENDPOINT %q: host is not the Logto service's name or one of its network aliases", endpoint)
	}
	if u, err := url.Parse(env["REDIS_URL"]); env["REDIS_URL"] != "" && (err != nil || !c.isService(u.Hostname())) {
		c.fail(where, "REDIS_URL %q: host is not a service of this file", env["REDIS_URL"])
	}

	listen := env["LISTEN_ADDR"]
	if listen == "" {
		listen = c.facts.settings["LISTEN_ADDR"]
	}
	_, port, _ := net.SplitHostPort(listen)
	published := false
	for _, p := range svc.Ports {
		published = published || strconv.Itoa(int(p.Target)) == port
	}
	if !published {
		c.fail(where, "LISTEN_ADDR's port %s is not among its ports", port)
	}
	c.scrapedBy(svc.Name + ":" + port)
}

// scrapedBy checks that the Prometheus service's configuration scrapes
// target (the proxy's service name and port).
func (c *composeRun) scrapedBy(target string) {
	prom, ok := c.serviceByImage("prom/prometheus")
	if !ok {
		c.fail("services", "no Prometheus service (image prom/prometheus)")
		return
	}
	var config string
	for _, arg := range prom.Command {
		if f, ok := strings.CutPrefix(arg, "--config.file="); ok {
			config = f
		}
	}
	host, ok := c.hostPath(prom, config)
	if !ok {
		c.fail("service "+prom.Name, "its --config.file is not in a bind mount")
		return
	}
	raw, err := os.ReadFile(host)
	if err != nil {
		c.fail("service "+prom.Name, "%v", err)
		return
	}
	var cfg struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		c.fail("service "+prom.Name, "%s: %v", c.rel(host), err)
		return
	}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, target) {
				return
			}
		}
	}
	c.fail("service "+prom.Name, "%s does not scrape %s", c.rel(host), target)
}

// grafanaDashboards checks that every file dashboard provider of the
// Grafana service's provisioning reads a mounted directory holding
// dashboards.
func (c *composeRun) grafanaDashboards() {
	g, ok := c.serviceByImage("grafana/grafana")
	if !ok {
		c.fail("services", "no Grafana service (image grafana/grafana)")
		return
	}
	where := "service " + g.Name
	dir, ok := c.hostPath(g, "/etc/grafana/provisioning/dashboards")
	if !ok {
		c.fail(where, "/etc/grafana/provisioning is not mounted")
		return
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if len(files) == 0 {
		c.fail(where, "no dashboard provider in %s", c.rel(dir))
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			c.fail(where, "%v", err)
			continue
		}
		var cfg struct {
			Providers []struct {
				Type    string `json:"type"`
				Options struct {
					Path string `json:"path"`
				} `json:"options"`
			} `json:"providers"`
		}
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			c.fail(where, "%s: %v", c.rel(f), err)
			continue
		}
		for _, p := range cfg.Providers {
			if p.Type != "file" {
				continue
			}
			host, ok := c.hostPath(g, p.Options.Path)
			dashboards, _ := filepath.Glob(filepath.Join(host, "*.json"))
			if !ok || len(dashboards) == 0 {
				c.fail(where, "%s reads dashboards from %s, which is not a mounted directory holding *.json", c.rel(f), p.Options.Path)
			}
		}
	}
}

// mountedFile checks that a file the service's command names is provided
// by a bind mount.
func (c *composeRun) mountedFile(where string, svc types.ServiceConfig, file string) {
	host, ok := c.hostPath(svc, file)
	if !ok {
		c.fail(where, "%s is not in a bind mount", file)
		return
	}
	if st, err := os.Stat(host); err != nil || st.IsDir() {
		c.fail(where, "%s (%s) is not a file", file, c.rel(host))
	}
}

// hostPath maps a path inside svc's container to the host path a bind
// mount provides it from.
func (c *composeRun) hostPath(svc types.ServiceConfig, inContainer string) (string, bool) {
	inContainer = path.Clean(inContainer)
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if rest, ok := strings.CutPrefix(inContainer, path.Clean(v.Target)); ok && (rest == "" || rest[0] == '/') {
			return filepath.Join(c.abs(v.Source), filepath.FromSlash(rest)), true
		}
	}
	return "", false
}

func (c *composeRun) serviceByImage(prefix string) (types.ServiceConfig, bool) {
	for _, name := range sortedKeys(c.project.Services) {
		if s := c.project.Services[name]; strings.HasPrefix(s.Image, prefix+":") {
			return s, true
		}
	}
	return types.ServiceConfig{}, false
}

// reaches reports whether host names svc inside the Compose network.
func (c *composeRun) reaches(svc types.ServiceConfig, host string) bool {
	if host == svc.Name {
		return true
	}
	for _, n := range svc.Networks {
		if n != nil && slices.Contains(n.Aliases, host) {
			return true
		}
	}
	return false
}

func (c *composeRun) isService(host string) bool {
	_, ok := c.project.Services[host]
	return ok
}

func (c *composeRun) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// rel names a path relative to the Compose file's directory, for messages.
func (c *composeRun) rel(p string) string {
	if r, err := filepath.Rel(c.dir, c.abs(p)); err == nil {
		return r
	}
	return p
}
