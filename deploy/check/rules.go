package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Our own rules: what a schema cannot say about logto-proxy's manifests
// (the requirements, and the references between objects that the
// API server would only discover at run time).

// wantReplicas is the replica count: the Deployment's and the
// HorizontalPodAutoscaler's floor.
const wantReplicas = 3

// kubernetesRules checks the decoded objects of the rendered kustomization.
func kubernetesRules(objs []runtime.Object, facts appFacts) []error {
	var (
		deployments []*appsv1.Deployment
		services    []*corev1.Service
		hpas        []*autoscalingv2.HorizontalPodAutoscaler
		pdbs        []*policyv1.PodDisruptionBudget
		configMaps  = map[string]*corev1.ConfigMap{}
		secrets     = map[string]*corev1.Secret{}
	)
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			deployments = append(deployments, o)
		case *corev1.Service:
			services = append(services, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpas = append(hpas, o)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		case *corev1.ConfigMap:
			configMaps[o.Name] = o
		case *corev1.Secret:
			secrets[o.Name] = o
		}
	}
	if len(deployments) != 1 || len(hpas) != 1 || len(pdbs) != 1 || len(services) == 0 {
		return []error{fmt.Errorf("want one Deployment, HorizontalPodAutoscaler and PodDisruptionBudget and a Service; got %d, %d, %d and %d",
			len(deployments), len(hpas), len(pdbs), len(services))}
	}
	r := &ruleRun{facts: facts, d: deployments[0], configMaps: configMaps, secrets: secrets}
	r.deployment()
	for _, s := range services {
		r.service(s)
	}
	r.hpa(hpas[0])
	r.pdb(pdbs[0])
	return r.problems
}

// ruleRun collects the problems of one check of the rendered objects.
type ruleRun struct {
	facts      appFacts
	d          *appsv1.Deployment
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	httpPort   *corev1.ContainerPort
	problems   []error
}

func (r *ruleRun) fail(where, format string, args ...any) {
	r.problems = append(r.problems, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
}

func (r *ruleRun) podLabels() labels.Set { return labels.Set(r.d.Spec.Template.Labels) }

// selects reports whether a label selector picks the Deployment's pods.
func (r *ruleRun) selects(sel *metav1.LabelSelector) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(r.podLabels())
}

func (r *ruleRun) deployment() {
	d := r.d
	where := "Deployment/" + d.Name
	if d.Spec.Replicas == nil || *d.Spec.Replicas != wantReplicas {
		r.fail(where, "replicas must be %d", wantReplicas)
	}
	if !r.selects(d.Spec.Selector) {
		r.fail(where, "spec.selector does not select the pod template's labels")
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		r.fail(where, "want exactly one container, got %d", len(pod.Containers))
		return
	}
	c := pod.Containers[0]
	where += " container " + c.Name

	if !pinnedImage(c.Image) {
		r.fail(where, "image %q must name a tag other than latest (or a digest); set it in kustomization.yaml's images", c.Image)
	}
	env := r.environment(where, c)
	for _, p := range c.Ports {
		if p.Name == "http" {
			r.httpPort = &p
		}
	}
	listen := env["LISTEN_ADDR"]
	if listen == "" {
		listen = r.facts.settings["LISTEN_ADDR"]
	}
	_, port, _ := net.SplitHostPort(listen)
	if r.httpPort == nil || strconv.Itoa(int(r.httpPort.ContainerPort)) != port {
		r.fail(where, "needs a port named http equal to LISTEN_ADDR's port (%s)", port)
		return
	}

	r.probe(where+" startupProbe", c.StartupProbe, "/healthz")
	r.probe(where+" livenessProbe", c.LivenessProbe, "/healthz")
	r.probe(where+" readinessProbe", c.ReadinessProbe, "/readyz")
	r.resources(where, c, env)
	r.security(where, pod, c)

	preStop := int64(0)
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = c.Lifecycle.PreStop.Sleep.Seconds
	}
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = *pod.TerminationGracePeriodSeconds
	}
	const margin = 5 * time.Second
	if need := time.Duration(preStop)*time.Second + r.facts.shutdown + margin; time.Duration(grace)*time.Second < need {
		r.fail(where, "terminationGracePeriodSeconds %d is shorter than the preStop sleep (%ds) + the service's shutdown bound (%s) + %s", grace, preStop, r.facts.shutdown, margin)
	}

	if len(pod.TopologySpreadConstraints) == 0 {
		r.fail(where, "no topologySpreadConstraints: the replicas may share one node")
	}
	for _, t := range pod.TopologySpreadConstraints {
		if !r.selects(t.LabelSelector) {
			r.fail(where, "topologySpreadConstraint on %s does not select the pods", t.TopologyKey)
		}
	}
	if a := d.Spec.Template.Annotations; a["prometheus.io/scrape"] == "true" {
		if a["prometheus.io/port"] != port || a["prometheus.io/path"] != "/metrics" {
			r.fail(where, "prometheus.io annotations must point at port %s, path /metrics", port)
		}
	}
}

// environment returns the container's environment (envFrom, then env) and
// checks that it comes from objects of the rendered set, names only
// variables the service reads, and holds every required one.
func (r *ruleRun) environment(where string, c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := r.configMaps[from.ConfigMapRef.Name]
			if !ok {
				r.fail(where, "envFrom ConfigMap %q is not in the kustomization", from.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				env[k] = v
			}
		case from.SecretRef != nil:
			s, ok := r.secrets[from.SecretRef.Name]
			if !ok {
				r.fail(where, "envFrom Secret %q is not in the kustomization", from.SecretRef.Name)
				continue
			}
			for k, v := range s.StringData {
				env[k] = v
			}
			for k, v := range s.Data {
				env[k] = string(v)
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for _, k := range sortedKeys(env) {
		if !r.facts.knownVariable(k) {
			r.fail(where, "environment variable %s is not a setting of cmd/logto-proxy (config.go)", k)
		}
	}
	for _, k := range []string{"LOGTO_ENDPOINT", "LOGTO_M2M_APP_ID", "LOGTO_M2M_APP_SECRET", "JWT_SECRET"} {
		if _, ok := env[k]; !ok {
			r.fail(where, "required setting %s is not in its environment", k)
		}
	}
	if _, ok := env["REDIS_URL"]; !ok {
		if _, ok := env["REDIS_ADDRS"]; !ok {
			r.fail(where, "neither REDIS_URL nor REDIS_ADDRS is in its environment")
		}
	}
	return env
}

// probe checks one HTTP probe on the http port.
func (r *ruleRun) probe(where string, p *corev1.Probe, path string) {
	switch {
	case p == nil:
		r.fail(where, "missing (want GET %s)", path)
	case p.HTTPGet == nil || p.HTTPGet.Path != path:
		r.fail(where, "must GET %s", path)
	case !r.targetsHTTP(p.HTTPGet.Port):
		r.fail(where, "must use the http port (%d)", r.httpPort.ContainerPort)
	}
}

// targetsHTTP reports whether a port reference (name or number) is the
// container's http port.
func (r *ruleRun) targetsHTTP(p intstr.IntOrString) bool {
	if p.Type == intstr.String {
		return p.StrVal == r.httpPort.Name
	}
	return p.IntVal == r.httpPort.ContainerPort
}

func (r *ruleRun) resources(where string, c corev1.Container, env map[string]string) {
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[name]
		lim, okLim := c.Resources.Limits[name]
		if !okReq || !okLim || req.IsZero() || lim.IsZero() {
			r.fail(where, "needs both a request and a limit for %s", name)
			continue
		}
		if req.Cmp(lim) > 0 {
			r.fail(where, "%s request %s exceeds its limit %s", name, req.String(), lim.String())
		}
	}
	if v, ok := env["GOMEMLIMIT"]; ok {
		limit, err := parseGoMemLimit(v)
		mem := c.Resources.Limits[corev1.ResourceMemory]
		switch {
		case err != nil:
			r.fail(where, "GOMEMLIMIT: %v", err)
		case mem.IsZero():
		case limit >= mem.Value():
			r.fail(where, "GOMEMLIMIT %s must stay below limits.memory %s, or the kernel kills the process before the collector acts", v, mem.String())
		}
	}
}

// parseGoMemLimit parses GOMEMLIMIT as the Go runtime does: bytes, with an
// optional B, KiB, MiB, GiB or TiB suffix.
func parseGoMemLimit(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size such as 900MiB", s)
	}
	return n * mult, nil
}

// security checks the restricted Pod Security Standard's container rules
// and a read-only root file system, taking the pod's settings as defaults.
func (r *ruleRun) security(where string, pod corev1.PodSpec, c corev1.Container) {
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		r.fail(where, "must set runAsNonRoot: true")
	}
	if uid := sc.RunAsUser; (uid != nil && *uid == 0) || (uid == nil && psc.RunAsUser != nil && *psc.RunAsUser == 0) {
		r.fail(where, "must not run as uid 0")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		r.fail(where, "must set readOnlyRootFilesystem: true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		r.fail(where, "must set allowPrivilegeEscalation: false")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		r.fail(where, "must drop ALL capabilities and add none")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		r.fail(where, "must run under the RuntimeDefault seccomp profile")
	}
}

// service checks that a Service selecting the pods reaches a container port.
func (r *ruleRun) service(s *corev1.Service) {
	where := "Service/" + s.Name
	if !r.selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}) {
		r.fail(where, "selector %v does not select the Deployment's pods", s.Spec.Selector)
		return
	}
	if r.httpPort == nil {
		return
	}
	for _, p := range s.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		if !r.targetsHTTP(target) {
			r.fail(where, "port %s targets %s, which is not the container's http port", p.Name, target.String())
		}
	}
}

func (r *ruleRun) hpa(h *autoscalingv2.HorizontalPodAutoscaler) {
	where := "HorizontalPodAutoscaler/" + h.Name
	ref := h.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != r.d.Name {
		r.fail(where, "scaleTargetRef must be apps/v1 Deployment %s, got %s %s %s", r.d.Name, ref.APIVersion, ref.Kind, ref.Name)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != wantReplicas || h.Spec.MaxReplicas < wantReplicas {
		r.fail(where, "minReplicas must be %d and maxReplicas at least that", wantReplicas)
	}
	cpu := false
	for _, m := range h.Spec.Metrics {
		cpu = cpu || (m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU)
	}
	if !cpu {
		r.fail(where, "must scale on the cpu resource metric")
	}
}

func (r *ruleRun) pdb(p *policyv1.PodDisruptionBudget) {
	where := "PodDisruptionBudget/" + p.Name
	if !r.selects(p.Spec.Selector) {
		r.fail(where, "selector does not select the Deployment's pods")
	}
	switch {
	case p.Spec.MaxUnavailable != nil:
		if v, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MaxUnavailable, wantReplicas, true); err != nil || v < 1 {
			r.fail(where, "maxUnavailable %s allows no disruption: nodes could never be drained", p.Spec.MaxUnavailable.String())
		}
	case p.Spec.MinAvailable != nil:
		if v, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MinAvailable, wantReplicas, true); err != nil || v >= wantReplicas {
			r.fail(where, "minAvailable %s allows no disruption at %d replicas: nodes could never be drained", p.Spec.MinAvailable.String(), wantReplicas)
		}
	default:
		r.fail(where, "needs minAvailable or maxUnavailable")
	}
}

// pinnedImage reports whether an image reference names a tag other than
// latest, or a digest.
func pinnedImage(ref string) bool {
	if strings.Contains(ref, "@sha256:") {
		return true
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	i := strings.LastIndex(name, ":")
	return i > 0 && name[i+1:] != "" && name[i+1:] != "latest"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
