package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oasdiff/yaml"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/logto"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// The monitoring material under deploy/ (the Grafana dashboard, the
// Prometheus scrape configuration and alert rules) and the README's metrics
// table, checked against what a replica built by newApp really exports: a
// panel or a rule naming a metric the service does not export would show
// "no data" or never fire, silently, so it fails here instead.

// Where the material lives, from this package's directory.
const (
	deployDashboard          = "../../deploy/grafana/dashboards/logto-proxy.json"
	deployGrafanaDatasources = "../../deploy/grafana/provisioning/datasources/prometheus.yml"
	deployGrafanaProvider    = "../../deploy/grafana/provisioning/dashboards/logto-proxy.yml"
	deployPrometheusDir      = "../../deploy/prometheus"
	deployPrometheusConfig   = deployPrometheusDir + "/prometheus.yml"
	deployAlerts             = deployPrometheusDir + "/alerts.yml"
	deployAlertsTests        = deployPrometheusDir + "/alerts_test.yml"
	deployReadme             = "../../README.md"
)

// Where docker-compose.yml mounts the material in the containers.
const (
	mountPrometheus        = "/etc/prometheus"             // deploy/prometheus
	mountGrafanaDashboards = "/var/lib/grafana/dashboards" // deploy/grafana/dashboards
)

// prometheusMadeSeries are series Prometheus makes itself for every target,
// which rules may use although no service exports them.
var prometheusMadeSeries = []string{"up"}

// metricFamily is one metric family a replica can export.
type metricFamily struct {
	name   string
	typ    string   // counter, gauge, histogram, summary or untyped
	labels []string // variable label names, sorted
}

// series are the names a PromQL query can select for the family: a
// histogram is stored as _bucket, _sum and _count series, a summary as its
// quantiles under its own name plus _sum and _count.
func (f metricFamily) series() []string {
	switch f.typ {
	case "histogram":
		return []string{f.name + "_bucket", f.name + "_sum", f.name + "_count"}
	case "summary":
		return []string{f.name, f.name + "_sum", f.name + "_count"}
	}
	return []string{f.name}
}

// exportedFamilies lists every metric family replica a can export. The
// names and labels come from the descriptors of every collector newApp
// registered (a Vec with no child yet has a descriptor but nothing to
// scrape); the types, which descriptors do not carry, from a gather after
// every observer method has written once. A family described but never
// gathered fails the test: whoever adds a metric written by a new method
// adds a call to it in touchEveryMetric.
func exportedFamilies(t testing.TB, a *app) map[string]metricFamily {
	t.Helper()
	described := describedFamilies(t, a.registry)
	touchEveryMetric(a)
	gathered, err := a.registry.Gather()
	if err != nil {
		// The process collector cannot read everything everywhere; what
		// it could read is still returned.
		t.Logf("gather: %v", err)
	}
	types := map[string]string{}
	for _, mf := range gathered {
		types[mf.GetName()] = strings.ToLower(mf.GetType().String())
		if _, ok := described[mf.GetName()]; !ok {
			t.Errorf("metric family %s is gathered but not described: an unchecked collector", mf.GetName())
		}
	}
	out := map[string]metricFamily{}
	for name, labels := range described {
		typ, ok := types[name]
		if !ok {
			if strings.HasPrefix(name, "logto_proxy_") {
				t.Errorf("metric family %s is described but touchEveryMetric does not write it: its type is unknown", name)
			}
			typ = "untyped"
		}
		out[name] = metricFamily{name: name, typ: typ, labels: labels}
	}
	if len(out) == 0 {
		t.Fatal("the replica's registry describes no metric at all")
	}
	return out
}

// descName reads the fully-qualified name and the variable labels out of a
// descriptor (prometheus.Desc exports them only through String).
var descName = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), .*variableLabels: \{([^}]*)\}\}$`)

// describedFamilies is every family the registry's collectors describe,
// with its variable labels.
func describedFamilies(t testing.TB, reg *prometheus.Registry) map[string][]string {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	out := map[string][]string{}
	for d := range ch {
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("descriptor %s: unexpected form", d)
		}
		name, err := strconv.Unquote(m[1])
		if err != nil {
			t.Fatalf("descriptor %s: %v", d, err)
		}
		var labels []string
		for l := range strings.SplitSeq(m[2], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		out[name] = labels
	}
	return out
}

// touchEveryMetric writes once through every observer method of the
// replica's metrics, so that every Vec has a child to be gathered with its
// type. The label values are the test's own ("deploy-test").
func touchEveryMetric(a *app) {
	const probe = "deploy-test"
	m := a.metrics
	m.ObserveHTTP("/"+probe, http.MethodGet, http.StatusOK, time.Millisecond)
	m.ObserveWebhook(probe, probe)
	m.ObserveWebhookRereads(probe, probe, 1)
	m.ObserveReconcile(probe, probe, cache.Differences{})
	var lo logto.Observer = m
	lo.ObserveCall(probe, probe, http.StatusOK, time.Millisecond)
	lo.ObserveBreaker(probe, logto.BreakerClosed)
	var co cache.Observer = m
	co.CacheHit(probe)
	co.CacheMiss(probe)
	co.StaleServed(probe)
	co.SnapshotInstalled(probe, 1, time.Now(), 1)
	co.RebuildFinished(probe, time.Millisecond, cache.OutcomeBuilt)
	co.RedisError(probe)
	co.LockContended(probe)
}

// knownSeries is every series name queries may select: the families'
// series and the ones Prometheus makes.
func knownSeries(fams map[string]metricFamily) map[string]bool {
	out := map[string]bool{}
	for _, f := range fams {
		for _, s := range f.series() {
			out[s] = true
		}
	}
	for _, s := range prometheusMadeSeries {
		out[s] = true
	}
	return out
}

// TestMonitoringMatchesExportedMetrics starts a real replica and checks the
// dashboard, the alert rules and the README's metrics table against the
// metric families it exports; each check is also shown to fail on a broken
// copy of its input.
func TestMonitoringMatchesExportedMetrics(t *testing.T) {
	sim := newSim(t, logtotest.BulkOptions{Distributors: 2, ResellersPerDistributor: 2, CustomersPerReseller: 2})
	redisURL, prefix := testRedisURL(t)
	cfg := replicaConfig(t, sim, redisURL, prefix)
	cfg.LogtoWebhookSigningKey = strings.Repeat("w", 32) // so that the webhook receiver is wired too
	a := startReplica(t, cfg)
	fams := exportedFamilies(t, a)
	known := knownSeries(fams)
	for _, want := range []string{"logto_proxy_http_request_duration_seconds", "logto_proxy_ready", "logto_proxy_redis_up", "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[want]; !ok {
			t.Errorf("exported families lack %s", want)
		}
	}
	if f := fams["logto_proxy_http_request_duration_seconds"]; f.typ != "histogram" || !known[f.name+"_bucket"] || known[f.name] {
		t.Errorf("the request histogram is %+v: its _bucket series should be known and its bare name not", f)
	}

	t.Run("the scrape is within what is described", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second}
		var scraped map[string]*dto.MetricFamily
		eventually(t, "the replica has loaded the hierarchy and reached Redis", func() bool {
			scraped = scrapeFamilies(t, c, a)
			ready, _ := gaugeOf(scraped, "logto_proxy_ready")
			up, _ := gaugeOf(scraped, "logto_proxy_redis_up")
			return ready == 1 && up == 1
		})
		for name, mf := range scraped {
			f, ok := fams[name]
			if !ok {
				t.Errorf("scraped family %s is not among the described ones", name)
				continue
			}
			if typ := strings.ToLower(mf.GetType().String()); typ != f.typ {
				t.Errorf("%s: scraped as %s, described as %s", name, typ, f.typ)
			}
		}
	})

	dashboard := readDeployFile(t, deployDashboard)
	t.Run("dashboard", func(t *testing.T) {
		if problems := checkDashboard(dashboard, known); len(problems) > 0 {
			t.Errorf("%s:\n%s", deployDashboard, strings.Join(problems, "\n"))
		}
		shown, err := dashboardMetricNames(dashboard)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if strings.HasPrefix(f.name, "logto_proxy_") && !slices.ContainsFunc(f.series(), func(s string) bool { return shown[s] }) {
				t.Errorf("no panel of the dashboard shows %s", f.name)
			}
		}
	})
	t.Run("dashboard checks fail on a broken dashboard", func(t *testing.T) {
		for _, tc := range brokenDashboards(t, dashboard) {
			problems := checkDashboard(tc.raw, known)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("%s: problems %q, want one containing %q", tc.name, problems, tc.want)
			}
		}
	})

	alerts := readDeployFile(t, deployAlerts)
	t.Run("alert rules", func(t *testing.T) {
		if problems := checkAlertRules(alerts, known); len(problems) > 0 {
			t.Errorf("%s:\n%s", deployAlerts, strings.Join(problems, "\n"))
		}
		rules, err := parseRuleFile(alerts)
		if err != nil {
			t.Fatal(err)
		}
		// The failures the issue names, each with at least one rule.
		for _, want := range []string{"LogtoProxyLogtoBreakerOpen", "LogtoProxySnapshotOld", "LogtoProxySnapshotPastHardTTL",
			"LogtoProxyLogtoErrors", "LogtoProxyHTTP5xx", "LogtoProxyRedisUnreachable", "LogtoProxyTargetDown",
			"LogtoProxyReplicaNotReady", "LogtoProxyGenerationLagging"} {
			if !slices.ContainsFunc(rules, func(r alertRule) bool { return r.Alert == want }) {
				t.Errorf("no alert rule %s", want)
			}
		}
	})
	t.Run("alert rule checks fail on broken rules", func(t *testing.T) {
		for _, tc := range brokenAlertRules(alerts) {
			problems := checkAlertRules([]byte(tc.raw), known)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("%s: problems %q, want one containing %q", tc.name, problems, tc.want)
			}
		}
	})

	t.Run("README metrics table", func(t *testing.T) {
		readme := readDeployFile(t, deployReadme)
		if problems := checkReadmeMetrics(string(readme), fams); len(problems) > 0 {
			t.Errorf("%s, section Operations:\n%s", deployReadme, strings.Join(problems, "\n"))
		}
	})
	t.Run("README metrics table checks fail on a wrong table", func(t *testing.T) {
		table := readmeTableFor(fams)
		var first metricFamily // the first logto_proxy_ family with labels
		for _, name := range slices.Sorted(maps.Keys(fams)) {
			if f := fams[name]; strings.HasPrefix(name, "logto_proxy_") && len(f.labels) > 0 {
				first = f
				break
			}
		}
		row := readmeRow(first)
		wrongType := fmt.Sprintf("| `%s` | summary | %s", first.name, strings.TrimPrefix(row, fmt.Sprintf("| `%s` | %s | ", first.name, first.typ)))
		wrongLabels := fmt.Sprintf("| `%s` | %s | `bogus` | … |\n", first.name, first.typ)
		for _, tc := range []struct{ name, readme, want string }{
			{"no Operations section", "# x\n\n## Configuration\n\n" + table, "no \"## Operations\" section"},
			{"a metric left out", "## Operations\n\n" + strings.Replace(table, row, "", 1), "no row for " + first.name},
			{"a metric that is not exported", "## Operations\n\n" + table + "| `logto_proxy_made_up_total` | counter | — | no |\n", "logto_proxy_made_up_total is not exported"},
			{"a wrong type", "## Operations\n\n" + strings.Replace(table, row, wrongType, 1), "type summary"},
			{"wrong labels", "## Operations\n\n" + strings.Replace(table, row, wrongLabels, 1), "labels [bogus]"},
			{"a row twice", "## Operations\n\n" + table + row, "twice"},
			{"the table in another section", "## Operations\n\nnone\n\n## Later\n\n" + table, "no row for"},
		} {
			problems := checkReadmeMetrics(tc.readme, fams)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("%s: problems %q, want one containing %q", tc.name, problems, tc.want)
			}
		}
		if problems := checkReadmeMetrics("## Operations\n\n"+table, fams); len(problems) > 0 {
			t.Errorf("the generated table itself: %q", problems)
		}
	})
}

// readDeployFile reads a file of the repository.
func readDeployFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scrapeFamilies reads the replica's /metrics page.
func scrapeFamilies(t testing.TB, c *http.Client, a *app) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := c.Get("http://" + a.addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	return fams
}

// gaugeOf is the value of a family's only series, and whether it has one.
func gaugeOf(fams map[string]*dto.MetricFamily, name string) (float64, bool) {
	mf, ok := fams[name]
	if !ok || len(mf.GetMetric()) != 1 {
		return 0, false
	}
	m := mf.GetMetric()[0]
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue(), true
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// TestReadinessGauges follows logto_proxy_ready and logto_proxy_redis_up on
// a real replica through a cold start with Logto down (not ready, Redis
// up), Logto's return (ready), and a Redis outage and its end.
func TestReadinessGauges(t *testing.T) {
	front := newLogtoFront(t, logtotest.Options{}, faultBulk)
	srv := cachetest.StartServer(t)
	cfg := faultConfig(t, front, "redis://"+srv.Addr(), cachetest.Prefix(t))
	front.down()
	a := startReplica(t, cfg)
	c := &http.Client{Timeout: 10 * time.Second}
	gauges := func() (ready, redisUp string) {
		fams := scrapeFamilies(t, c, a)
		show := func(name string) string {
			if v, ok := gaugeOf(fams, name); ok {
				return strconv.FormatFloat(v, 'g', -1, 64)
			}
			return "absent"
		}
		return show("logto_proxy_ready"), show("logto_proxy_redis_up")
	}
	wait := func(what, wantReady, wantRedis string) {
		t.Helper()
		var ready, redisUp string
		if !within(livenessBound, func() bool {
			ready, redisUp = gauges()
			return ready == wantReady && redisUp == wantRedis
		}) {
			t.Fatalf("%s: ready %s, redis_up %s; want %s, %s", what, ready, redisUp, wantReady, wantRedis)
		}
	}
	wait("Logto down at a cold start", "0", "1")
	front.up()
	// The replica loads on demand once its first attempt failed: a read
	// asks for it.
	session := newTokens(t, cfg, front).owner(t)
	reader := newClient(t, a)
	eventually(t, "a read is answered once Logto is back", func() bool {
		return reader.get("/api/customers?page_size=1", session).status == http.StatusOK
	})
	wait("Logto back", "1", "1")
	srv.Stop()
	wait("Redis down", "1", "0")
	srv.Start()
	wait("Redis back", "1", "1")
}

// Grafana's dashboard model, as much of it as the checks read.
type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Collapsed  bool            `json:"collapsed"`
	Datasource *grafanaRef     `json:"datasource"`
	Targets    []grafanaTarget `json:"targets"`
	Panels     []grafanaPanel  `json:"panels"` // a row's panels
}

type grafanaTarget struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *grafanaRef `json:"datasource"`
}

type grafanaRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"` // a string, or {"query": "..."} since Grafana 10
	Datasource json.RawMessage `json:"datasource"`
}

// query is the variable's query text.
func (v grafanaVariable) query() (string, error) {
	if len(v.Query) == 0 {
		return "", nil
	}
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &o); err != nil {
		return "", fmt.Errorf("variable %s: query is neither a string nor an object: %w", v.Name, err)
	}
	return o.Query, nil
}

// datasourceVar is how every query names its data source: the dashboard's
// datasource variable, so that it works with whatever Prometheus an
// operator has.
const datasourceVar = "${datasource}"

// walkPanels calls fn on every panel, rows' nested panels included.
func walkPanels(panels []grafanaPanel, fn func(p grafanaPanel)) {
	for _, p := range panels {
		fn(p)
		walkPanels(p.Panels, fn)
	}
}

// checkDashboard lists what is wrong with a dashboard: every panel queries
// (through the datasource variable) metrics that are known, and the
// variables the queries use are defined, as are the datasource, job and
// instance variables.
func checkDashboard(raw []byte, known map[string]bool) []string {
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return []string{"not a dashboard: " + err.Error()}
	}
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if d.SchemaVersion < 39 {
		report("schemaVersion %d, want 39 or later", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		report("the dashboard needs a uid and a title (provisioning keys on the uid)")
	}
	vars := map[string]grafanaVariable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || strings.Trim(string(v.Query), `"`) != "prometheus" {
		report("no variable datasource of type datasource querying prometheus")
	}
	for _, name := range []string{"job", "instance"} {
		v, ok := vars[name]
		if !ok || v.Type != "query" {
			report("no query variable %s", name)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := v.query()
		if err != nil {
			report("%v", err)
			continue
		}
		names, err := grafanaQueryMetricNames(q)
		if err != nil {
			report("variable %s: %v", v.Name, err)
		}
		for _, n := range names {
			if !known[n] {
				report("variable %s queries %s, which is not exported", v.Name, n)
			}
		}
		if !strings.Contains(string(v.Datasource), datasourceVar) {
			report("variable %s does not query the data source %s", v.Name, datasourceVar)
		}
	}
	usedVar := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	walkPanels(d.Panels, func(p grafanaPanel) {
		name := fmt.Sprintf("panel %q", p.Title)
		if p.Type == "row" {
			if !p.Collapsed && len(p.Panels) > 0 {
				report("%s: an open row holds nested panels, which Grafana does not show", name)
			}
			return
		}
		if len(p.Targets) == 0 {
			report("%s has no query", name)
		}
		for _, tg := range p.Targets {
			ds := tg.Datasource
			if ds == nil {
				ds = p.Datasource
			}
			if ds == nil || ds.UID != datasourceVar {
				report("%s, query %s: data source is not %s", name, tg.RefID, datasourceVar)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				report("%s, query %s: empty expression", name, tg.RefID)
				continue
			}
			names, err := promqlMetricNames(tg.Expr)
			if err != nil {
				report("%s, query %s: %v", name, tg.RefID, err)
			}
			for _, n := range names {
				if !known[n] {
					report("%s, query %s: %s is not exported", name, tg.RefID, n)
				}
			}
			for _, m := range usedVar.FindAllStringSubmatch(tg.Expr, -1) {
				if _, ok := vars[m[1]]; !ok && !strings.HasPrefix(m[1], "__") {
					report("%s, query %s: variable $%s is not defined", name, tg.RefID, m[1])
				}
			}
		}
	})
	return problems
}

// dashboardMetricNames is every series name the dashboard's panels query.
func dashboardMetricNames(raw []byte) (map[string]bool, error) {
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	var errs []error
	walkPanels(d.Panels, func(p grafanaPanel) {
		for _, tg := range p.Targets {
			names, err := promqlMetricNames(tg.Expr)
			errs = append(errs, err)
			for _, n := range names {
				out[n] = true
			}
		}
	})
	return out, errors.Join(errs...)
}

// brokenCase is an input made wrong in one way, and what the check must say.
type brokenCase struct {
	name, want string
	raw        []byte
}

// brokenDashboards are copies of the dashboard, each broken in one way:
// the checks must report each.
func brokenDashboards(t testing.TB, raw []byte) []brokenCase {
	t.Helper()
	edit := func(fn func(d map[string]any)) []byte {
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		fn(d)
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	panels := func(d map[string]any) []any { return d["panels"].([]any) }
	// The first panel with a query, and the first row with nested panels.
	firstQueried := func(d map[string]any) map[string]any {
		for _, p := range panels(d) {
			if p := p.(map[string]any); p["type"] != "row" {
				return p
			}
		}
		t.Fatal("the dashboard has no panel outside rows")
		return nil
	}
	nestedQueried := func(d map[string]any) map[string]any {
		for _, p := range panels(d) {
			if nested, _ := p.(map[string]any)["panels"].([]any); len(nested) > 0 {
				return nested[0].(map[string]any)
			}
		}
		t.Fatal("the dashboard has no collapsed row holding panels")
		return nil
	}
	typo := func(p map[string]any) {
		tg := p["targets"].([]any)[0].(map[string]any)
		expr := tg["expr"].(string)
		names, err := promqlMetricNames(expr)
		if err != nil || len(names) == 0 {
			t.Fatalf("cannot find a metric to misspell in %q: %v", expr, err)
		}
		tg["expr"] = strings.Replace(expr, names[0], names[0]+"_typo", 1)
	}
	return []brokenCase{
		{name: "a misspelt metric", want: "_typo is not exported", raw: edit(func(d map[string]any) { typo(firstQueried(d)) })},
		{name: "a misspelt metric in a row's nested panel", want: "_typo is not exported", raw: edit(func(d map[string]any) { typo(nestedQueried(d)) })},
		{name: "a panel without queries", want: "has no query", raw: edit(func(d map[string]any) { delete(firstQueried(d), "targets") })},
		{name: "an empty expression", want: "empty expression", raw: edit(func(d map[string]any) {
			firstQueried(d)["targets"].([]any)[0].(map[string]any)["expr"] = " "
		})},
		{name: "an unknown function", want: "unknown function", raw: edit(func(d map[string]any) {
			tg := firstQueried(d)["targets"].([]any)[0].(map[string]any)
			tg["expr"] = "ratee(" + tg["expr"].(string) + ")"
		})},
		{name: "a hard-wired data source", want: "data source is not", raw: edit(func(d map[string]any) {
			p := firstQueried(d)
			p["datasource"] = map[string]any{"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
			p["targets"].([]any)[0].(map[string]any)["datasource"] = p["datasource"]
		})},
		{name: "a variable misspelt in a query", want: "variable $instanse is not defined", raw: edit(func(d map[string]any) {
			tg := firstQueried(d)["targets"].([]any)[0].(map[string]any)
			tg["expr"] = strings.Replace(tg["expr"].(string), "$instance", "$instanse", 1)
		})},
		{name: "a misspelt metric in a variable's query", want: "variable job queries logto_proxy_redy", raw: edit(func(d map[string]any) {
			for _, v := range d["templating"].(map[string]any)["list"].([]any) {
				if v := v.(map[string]any); v["name"] == "job" {
					v["query"] = "label_values(logto_proxy_redy, job)"
				}
			}
		})},
		{name: "no instance variable", want: "no query variable instance", raw: edit(func(d map[string]any) {
			tm := d["templating"].(map[string]any)
			tm["list"] = slices.DeleteFunc(tm["list"].([]any), func(v any) bool { return v.(map[string]any)["name"] == "instance" })
		})},
		{name: "an old schema", want: "schemaVersion 27", raw: edit(func(d map[string]any) { d["schemaVersion"] = 27 })},
	}
}

// alertRule is one rule of a Prometheus rule file.
type alertRule struct {
	Group       string            `json:"-"`
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// parseRuleFile reads a Prometheus rule file.
func parseRuleFile(raw []byte) ([]alertRule, error) {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("rule file: %w", err)
	}
	var f struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("rule file: %w", err)
	}
	var out []alertRule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			r.Group = g.Name
			out = append(out, r)
		}
	}
	return out, nil
}

// alertSeverities are the severity labels the rules use (see the header of
// alerts.yml).
var alertSeverities = []string{"critical", "warning", "info"}

// checkAlertRules lists what is wrong with a rule file: every alert has a
// unique name, an expression over known metrics, a for of at least one
// evaluation, a severity, and summary, description and runbook annotations.
func checkAlertRules(raw []byte, known map[string]bool) []string {
	rules, err := parseRuleFile(raw)
	if err != nil {
		return []string{err.Error()}
	}
	if len(rules) == 0 {
		return []string{"no rules"}
	}
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	seen := map[string]bool{}
	for i, r := range rules {
		name := r.Alert
		if name == "" {
			name = fmt.Sprintf("rule %d of group %s", i, r.Group)
			if r.Record == "" {
				report("%s: neither an alert nor a recording rule", name)
			}
		}
		names, err := promqlMetricNames(r.Expr)
		switch {
		case strings.TrimSpace(r.Expr) == "":
			report("%s: no expr", name)
		case err != nil:
			report("%s: %v", name, err)
		}
		for _, n := range names {
			if !known[n] {
				report("%s: %s is not exported", name, n)
			}
		}
		if r.Alert == "" {
			continue
		}
		if seen[r.Alert] {
			report("%s: two alerts of that name", name)
		}
		seen[r.Alert] = true
		if d, err := model.ParseDuration(r.For); err != nil || d <= 0 {
			report("%s: for %q, want a duration (an alert firing on one evaluation pages on every blip)", name, r.For)
		}
		if !slices.Contains(alertSeverities, r.Labels["severity"]) {
			report("%s: severity %q, want one of %v", name, r.Labels["severity"], alertSeverities)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				report("%s: no %s annotation", name, a)
			}
		}
	}
	return problems
}

// brokenAlertRules are copies of the rule file, each broken in one way.
func brokenAlertRules(raw []byte) []struct{ name, want, raw string } {
	s := string(raw)
	return []struct{ name, want, raw string }{
		{"a misspelt metric", "logto_proxy_logto_breaker_states is not exported",
			strings.Replace(s, "logto_proxy_logto_breaker_state)", "logto_proxy_logto_breaker_states)", 1)},
		{"a histogram's bare name", "logto_proxy_snapshot_rebuild_duration_seconds is not exported",
			strings.Replace(s, "logto_proxy_snapshot_rebuild_duration_seconds_count", "logto_proxy_snapshot_rebuild_duration_seconds", 1)},
		{"no for", "LogtoProxyTargetDown: for \"\"", strings.Replace(s, "        for: 2m\n", "", 1)},
		{"no severity", "LogtoProxyTargetDown: severity \"\"", strings.Replace(s, "severity: critical\n", "team: ops\n", 1)},
		{"an unknown severity", "severity \"page\"", strings.Replace(s, "severity: critical\n", "severity: page\n", 1)},
		{"no summary", "LogtoProxyTargetDown: no summary annotation", strings.Replace(s, "summary:", "summry:", 1)},
		{"an alert twice", "two alerts of that name", strings.Replace(s, "alert: LogtoProxyReplicaNotReady", "alert: LogtoProxyTargetDown", 1)},
		{"not YAML", "rule file", s + "\n  - alert: [\n"},
	}
}

// readmeMetricRow is a row of the README's metrics table: | `name` | type |
// labels | meaning |.
var readmeMetricRow = regexp.MustCompile("^\\| `(logto_proxy_[a-z0-9_]+)` \\| ([a-z]+) \\| ([^|]*) \\|")

// checkReadmeMetrics lists the differences between the metrics table of
// the README's "## Operations" section and the logto_proxy_ families a
// replica exports: the same names, each once, with its type and labels.
func checkReadmeMetrics(readme string, fams map[string]metricFamily) []string {
	_, section, ok := strings.Cut("\n"+readme, "\n## Operations\n")
	if !ok {
		return []string{"the README has no \"## Operations\" section"}
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	listed := map[string]bool{}
	for line := range strings.Lines(section) {
		m := readmeMetricRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name, typ, labelCell := m[1], m[2], m[3]
		if listed[name] {
			report("%s is listed twice", name)
		}
		listed[name] = true
		f, ok := fams[name]
		if !ok {
			report("%s is not exported", name)
			continue
		}
		if typ != f.typ {
			report("%s: type %s, exported as %s", name, typ, f.typ)
		}
		var labels []string
		for _, l := range regexp.MustCompile("`([^`]*)`").FindAllStringSubmatch(labelCell, -1) {
			labels = append(labels, l[1])
		}
		slices.Sort(labels)
		if !slices.Equal(labels, f.labels) {
			report("%s: labels %v, exported with %v", name, labels, f.labels)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(fams)) {
		if strings.HasPrefix(name, "logto_proxy_") && !listed[name] {
			report("no row for %s (%s)", name, readmeRow(fams[name]))
		}
	}
	return problems
}

// readmeRow is the start of f's row in the README's metrics table (the
// meaning is the writer's).
func readmeRow(f metricFamily) string {
	labels := "—"
	if len(f.labels) > 0 {
		labels = "`" + strings.Join(f.labels, "`, `") + "`"
	}
	return fmt.Sprintf("| `%s` | %s | %s | … |\n", f.name, f.typ, labels)
}

// readmeTableFor is a metrics table listing every logto_proxy_ family.
func readmeTableFor(fams map[string]metricFamily) string {
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
	for _, name := range slices.Sorted(maps.Keys(fams)) {
		if strings.HasPrefix(name, "logto_proxy_") {
			b.WriteString(readmeRow(fams[name]))
		}
	}
	return b.String()
}

// TestScrapeAndProvisioningConfig checks the wiring between the pieces of
// the Compose stack: Prometheus scrapes the proxy and loads the alert
// rules from where Compose mounts them, and Grafana's provisioning points
// at Prometheus and at where Compose mounts the dashboard.
func TestScrapeAndProvisioningConfig(t *testing.T) {
	prom := readDeployFile(t, deployPrometheusConfig)
	if problems := checkPrometheusConfig(prom); len(problems) > 0 {
		t.Errorf("%s:\n%s", deployPrometheusConfig, strings.Join(problems, "\n"))
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"another target", "logto-proxy:8080", "logto-proxy:9090", "no target logto-proxy:8080"},
		{"no rule file", "/etc/prometheus/alerts.yml", "/etc/prometheus/rules.yml", "does not load"},
		{"another job name", "job_name: logto-proxy", "job_name: proxy", "no scrape job logto-proxy"},
	} {
		problems := checkPrometheusConfig([]byte(strings.Replace(string(prom), tc.from, tc.to, 1)))
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
			t.Errorf("%s: problems %q, want one containing %q", tc.name, problems, tc.want)
		}
	}

	ds := readDeployFile(t, deployGrafanaDatasources)
	var dsFile struct {
		Datasources []struct {
			Name      string `json:"name"`
			Type      string `json:"type"`
			URL       string `json:"url"`
			IsDefault bool   `json:"isDefault"`
		} `json:"datasources"`
	}
	decodeYAML(t, deployGrafanaDatasources, ds, &dsFile)
	if len(dsFile.Datasources) != 1 || dsFile.Datasources[0].Type != "prometheus" ||
		dsFile.Datasources[0].URL != "http://prometheus:9090" || !dsFile.Datasources[0].IsDefault {
		t.Errorf("%s: %+v, want one default prometheus data source at http://prometheus:9090", deployGrafanaDatasources, dsFile.Datasources)
	}

	var providers struct {
		Providers []struct {
			Type    string `json:"type"`
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	decodeYAML(t, deployGrafanaProvider, readDeployFile(t, deployGrafanaProvider), &providers)
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" || providers.Providers[0].Options.Path != mountGrafanaDashboards {
		t.Errorf("%s: %+v, want one file provider reading %s", deployGrafanaProvider, providers.Providers, mountGrafanaDashboards)
	}
}

// decodeYAML decodes a YAML file into v through JSON; v may name only the
// fields a check reads.
func decodeYAML(t testing.TB, name string, raw []byte, v any) {
	t.Helper()
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := json.Unmarshal(js, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// checkPrometheusConfig lists what is wrong with prometheus.yml: it scrapes
// logto-proxy:8080/metrics as job logto-proxy, and loads alerts.yml from
// where Compose mounts deploy/prometheus.
func checkPrometheusConfig(raw []byte) []string {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return []string{err.Error()}
	}
	var cfg struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := json.Unmarshal(js, &cfg); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	if !slices.Contains(cfg.RuleFiles, mountPrometheus+"/"+path.Base(deployAlerts)) {
		problems = append(problems, fmt.Sprintf("rule_files %v does not load %s/%s", cfg.RuleFiles, mountPrometheus, path.Base(deployAlerts)))
	}
	for _, rf := range cfg.RuleFiles {
		local, ok := strings.CutPrefix(rf, mountPrometheus+"/")
		if _, err := os.Stat(filepath.Join(deployPrometheusDir, local)); !ok || err != nil {
			problems = append(problems, fmt.Sprintf("rule file %s is not in deploy/prometheus, which Compose mounts at %s", rf, mountPrometheus))
		}
	}
	found := false
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != "logto-proxy" {
			continue
		}
		found = true
		if sc.MetricsPath != "/metrics" {
			problems = append(problems, fmt.Sprintf("job logto-proxy scrapes %q, want /metrics", sc.MetricsPath))
		}
		if !slices.ContainsFunc(sc.StaticConfigs, func(s struct {
			Targets []string `json:"targets"`
		}) bool {
			return slices.Contains(s.Targets, "logto-proxy:8080")
		}) {
			problems = append(problems, "job logto-proxy has no target logto-proxy:8080")
		}
	}
	if !found {
		problems = append(problems, "no scrape job logto-proxy (the alerts match job=\"logto-proxy\")")
	}
	return problems
}

// TestAlertRulesPromtool has Prometheus's own tool check the rule file and
// the configuration, run the rules' unit tests (alerts_test.yml), and parse
// every query of the dashboard (as recording rules, with Grafana's
// variables given values). promtool comes with Prometheus (Debian:
// apt-get install prometheus); without it the test skips, saying so.
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus); the rules' unit tests in deploy/prometheus/alerts_test.yml did not run")
	}
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run(".", "check", "rules", deployAlerts)
	run(".", "check", "config", "--syntax-only", deployPrometheusConfig)

	// promtool compares annotations in full and the unit tests check
	// labels, so they run against a copy of the rules without annotations.
	dir := t.TempDir()
	js, err := yaml.YAMLToJSON(readDeployFile(t, deployAlerts))
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := json.Unmarshal(js, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			delete(r.(map[string]any), "annotations")
		}
	}
	writeJSON(t, filepath.Join(dir, "alerts.yml"), rules) // JSON is YAML
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yml"), readDeployFile(t, deployAlertsTests), 0o644); err != nil {
		t.Fatal(err)
	}
	run(dir, "test", "rules", "alerts_test.yml")

	// Every dashboard query, as a recording rule: promtool parses it.
	// Grafana's variables are replaced by values of the same kind.
	vars := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h", "$job", "logto-proxy", "$instance", ".+")
	var record []map[string]string
	var d grafanaDashboard
	if err := json.Unmarshal(readDeployFile(t, deployDashboard), &d); err != nil {
		t.Fatal(err)
	}
	walkPanels(d.Panels, func(p grafanaPanel) {
		for _, tg := range p.Targets {
			record = append(record, map[string]string{"record": fmt.Sprintf("dashboard:query_%d", len(record)), "expr": vars.Replace(tg.Expr)})
		}
	})
	writeJSON(t, filepath.Join(dir, "dashboard.yml"), map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": record}}})
	run(dir, "check", "rules", "dashboard.yml")
}

func writeJSON(t testing.TB, name string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// promqlFunctions are PromQL's functions (Prometheus 3), which are followed
// by a parenthesis and are not metrics. Function names are case-sensitive.
var promqlFunctions = setOf("abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
	"avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time",
	"days_in_month", "day_of_month", "day_of_week", "day_of_year", "deg", "delta", "deriv", "double_exponential_smoothing",
	"exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
	"histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "info", "irate", "label_join",
	"label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time", "min_over_time", "minute",
	"month", "pi", "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar",
	"sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt", "stddev_over_time",
	"stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "ts_of_max_over_time", "ts_of_min_over_time",
	"ts_of_last_over_time", "vector", "year", "start", "end")

// promqlKeywords are PromQL's aggregations, operators and modifiers,
// matched case-insensitively as Prometheus does.
var promqlKeywords = setOf("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
	"topk", "quantile", "limitk", "limit_ratio", "and", "or", "unless", "atan2", "bool", "offset", "by", "without",
	"on", "ignoring", "group_left", "group_right", "inf", "nan")

// promqlLabelLists are the keywords followed by a parenthesised list of
// label names (optional after group_left and group_right).
var promqlLabelLists = setOf("by", "without", "on", "ignoring", "group_left", "group_right")

func setOf(words ...string) map[string]bool {
	out := make(map[string]bool, len(words))
	for _, w := range words {
		out[w] = true
	}
	return out
}

// promqlMetricNames lists the metric names a PromQL expression selects, in
// order of appearance, without duplicates. It is a tokenizer, not a
// parser: it skips strings, label matchers ({...}), ranges and subqueries
// ([...]), label lists after by, without, on, ignoring, group_left and
// group_right, numbers and durations, and Grafana's variables ($name,
// ${name}); it reports unknown functions, unbalanced brackets and
// selections by __name__, which would hide a metric from this check.
// Every other identifier is a metric name.
func promqlMetricNames(expr string) ([]string, error) {
	var names []string
	depth := 0
	labelList := false // the previous token opens a label list if a ( follows
	for i := 0; i < len(expr); {
		c := expr[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			i++
			continue
		}
		if c == '#' { // a comment, to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
			continue
		}
		afterLabelKeyword := labelList
		labelList = false
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := promqlSkipString(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			end, err := promqlSkipMatchers(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '[':
			end := strings.IndexByte(expr[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [ at %d", i)
			}
			i += end + 1
		case c == ']' || c == '}':
			return nil, fmt.Errorf("unopened %c at %d", c, i)
		case c == '$':
			i = promqlSkipVariable(expr, i)
		case c == '(' && afterLabelKeyword:
			end := strings.IndexByte(expr[i:], ')')
			if end < 0 {
				return nil, fmt.Errorf("unclosed label list at %d", i)
			}
			i += end + 1
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth--; depth < 0 {
				return nil, fmt.Errorf("unopened ) at %d", i)
			}
			i++
		case isDigit(c) || (c == '.' && i+1 < len(expr) && isDigit(expr[i+1])):
			i = promqlSkipNumber(expr, i)
		case isIdentStart(c):
			start := i
			for i < len(expr) && isIdentChar(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := promqlNextByte(expr, i)
			lower := strings.ToLower(word)
			switch {
			case promqlLabelLists[lower]:
				labelList = true
			case promqlKeywords[lower]:
			case promqlFunctions[word]:
				if next != '(' {
					return nil, fmt.Errorf("function %s at %d is not called", word, start)
				}
			case next == '(':
				return nil, fmt.Errorf("unknown function %s at %d", word, start)
			case !slices.Contains(names, word):
				names = append(names, word)
			}
		default: // operators, commas, @
			i++
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%d unclosed (", depth)
	}
	return names, nil
}

// promqlSkipString returns the index after the string starting at i.
func promqlSkipString(s string, i int) (int, error) {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && quote != '`':
			j++
		case s[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at %d", i)
}

// promqlSkipMatchers returns the index after the label matchers starting
// at i, refusing a selection by __name__.
func promqlSkipMatchers(s string, i int) (int, error) {
	for j := i + 1; j < len(s); {
		switch c := s[j]; {
		case c == '"' || c == '\'' || c == '`':
			end, err := promqlSkipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end
		case c == '}':
			return j + 1, nil
		case c == '{':
			return 0, fmt.Errorf("{ inside label matchers at %d", j)
		case isIdentStart(c):
			start := j
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			if s[start:j] == "__name__" {
				return 0, fmt.Errorf("selection by __name__ at %d: name the metric", start)
			}
		default:
			j++
		}
	}
	return 0, fmt.Errorf("unclosed { at %d", i)
}

// promqlSkipVariable returns the index after the Grafana variable starting
// at i: ${name...} or $name.
func promqlSkipVariable(s string, i int) int {
	if i+1 < len(s) && s[i+1] == '{' {
		if end := strings.IndexByte(s[i:], '}'); end >= 0 {
			return i + end + 1
		}
		return len(s)
	}
	j := i + 1
	for j < len(s) && isIdentChar(s[j]) && s[j] != ':' {
		j++
	}
	return j
}

// promqlSkipNumber returns the index after the number or duration starting
// at i (0.99, 1e-3, 0x1f, 5m, 1h30m).
func promqlSkipNumber(s string, i int) int {
	j := i
	for j < len(s) {
		c := s[j]
		switch {
		case isDigit(c) || c == '.' || c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z'):
			j++
		case (c == '+' || c == '-') && (s[j-1]|0x20 == 'e') && !strings.HasPrefix(strings.ToLower(s[i:j]), "0x"):
			j++
		default:
			return j
		}
	}
	return j
}

// promqlNextByte is the first byte at or after i that is not a space (0 at
// the end).
func promqlNextByte(s string, i int) byte {
	for ; i < len(s); i++ {
		if c := s[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c
		}
	}
	return 0
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }

// grafanaQueryMetricNames lists the metrics a query variable of Grafana's
// Prometheus data source selects: label_values(selector, label) and
// query_result(expr) hold PromQL; label_values(label), label_names() and
// metrics(regex) select none.
func grafanaQueryMetricNames(q string) ([]string, error) {
	q = strings.TrimSpace(q)
	fn, rest, ok := strings.Cut(q, "(")
	if !ok || !strings.HasSuffix(rest, ")") {
		return promqlMetricNames(q)
	}
	inner := strings.TrimSuffix(rest, ")")
	switch strings.TrimSpace(fn) {
	case "label_values":
		comma := promqlLastTopLevelComma(inner)
		if comma < 0 {
			return nil, nil // label_values(label): every series
		}
		return promqlMetricNames(inner[:comma])
	case "query_result":
		return promqlMetricNames(inner)
	case "label_names", "metrics":
		return nil, nil
	}
	return promqlMetricNames(q)
}

// promqlLastTopLevelComma is the index of the last comma of s outside
// strings and brackets (-1 when none).
func promqlLastTopLevelComma(s string) int {
	last, depth := -1, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'', '`':
			end, err := promqlSkipString(s, i)
			if err != nil {
				return last
			}
			i = end - 1
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			depth--
		case ',':
			if depth == 0 {
				last = i
			}
		}
	}
	return last
}

// TestPromQLMetricNames pins the tokenizer the dashboard and rule checks
// rest on, on the constructs they use and on the mistakes they must catch.
func TestPromQLMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
		err  string
	}{
		{expr: "up", want: []string{"up"}},
		{expr: `up{job="logto-proxy"} == 0`, want: []string{"up"}},
		{expr: `sum by (route, status) (rate(logto_proxy_http_requests_total{job=~"$job", status=~"5.."}[$__rate_interval]))`,
			want: []string{"logto_proxy_http_requests_total"}},
		{expr: `histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{instance=~"${instance}"}[5m])))`, want: []string{"a_bucket"}},
		{expr: `sum(rate(a[5m])) without (instance) / on (job, view) group_left () sum by (job) (b offset 2m)`, want: []string{"a", "b"}},
		{expr: "x < on (job, view) group_left (instance, pod) max by (job, view) (x offset 1h30m)", want: []string{"x"}},
		{expr: "a * on (x) group_right b", want: []string{"a", "b"}},
		{expr: "SUM BY (le) (a) AND ON (job) b OR c UNLESS d", want: []string{"a", "b", "c", "d"}},
		{expr: `count(a == 0) or vector(0)`, want: []string{"a"}},
		{expr: `label_replace(a, "dst", "$1", "src", "(.*)") > bool 1e-3`, want: []string{"a"}},
		{expr: `topk(5, a:recorded_rate5m) @ start()`, want: []string{"a:recorded_rate5m"}},
		{expr: "rate(a[5m:30s]) # a comment naming not_a_metric\n+ 0x1F + .5 + Inf - NaN", want: []string{"a"}},
		{expr: `a{label="with } and { and \" inside"} + b{l='x'} + c{l=` + "`raw`}", want: []string{"a", "b", "c"}},
		{expr: "a + a", want: []string{"a"}},
		{expr: "ratee(a[5m])", err: "unknown function ratee"},
		{expr: "rate(a[5m]", err: "unclosed ("},
		{expr: "rate(a[5m]))", err: "unopened )"},
		{expr: `a{job="x"`, err: "unclosed {"},
		{expr: "a[5m", err: "unclosed ["},
		{expr: `{__name__="a"}`, err: "__name__"},
		{expr: "rate + a", err: "function rate at 0 is not called"},
		{expr: `a{job="unterminated}`, err: "unclosed string"},
	} {
		got, err := promqlMetricNames(tc.expr)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one containing %q", tc.expr, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.expr, err)
		case tc.err == "" && !slices.Equal(got, tc.want):
			t.Errorf("%q: %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"label_values(logto_proxy_ready, job)", []string{"logto_proxy_ready"}},
		{`label_values(logto_proxy_ready{job=~"$job", x=","}, instance)`, []string{"logto_proxy_ready"}},
		{"label_values(instance)", nil},
		{"query_result(sum by (job) (a))", []string{"a"}},
		{"metrics(logto_proxy_.*)", nil},
		{"b", []string{"b"}},
	} {
		got, err := grafanaQueryMetricNames(tc.query)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %q, %v; want %q", tc.query, got, err, tc.want)
		}
	}
}
