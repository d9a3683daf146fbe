package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/getkin/kin-openapi/openapi3"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/openapi"
	"sigs.k8s.io/kubectl-validate/pkg/openapiclient"
	"sigs.k8s.io/kubectl-validate/pkg/validator"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kubernetesVersion is the API the manifests are validated against: the
// newest whose schemas kubectl-validate v0.0.4 embeds (so no cluster and no
// download is needed). Every API the manifests use is GA in it and unchanged
// since, so what passes here is accepted by 1.30 and later.
const kubernetesVersion = "1.30"

// checkKubernetes renders the kustomization in dir and validates every
// object it produces.
func checkKubernetes(ctx context.Context, dir string, facts appFacts) []error {
	problems := orphanManifests(dir)
	docs, err := renderKustomization(dir)
	if err != nil {
		return append(problems, fmt.Errorf("kustomize: %w", err))
	}
	v, err := newK8sValidator(kubernetesVersion)
	if err != nil {
		return append(problems, err)
	}
	var objs []runtime.Object
	for _, doc := range docs {
		if err := ctx.Err(); err != nil {
			return append(problems, err)
		}
		obj, errs := v.validate(doc)
		problems = append(problems, errs...)
		if obj != nil {
			objs = append(objs, obj)
		}
	}
	if len(objs) < len(docs) {
		return problems // the rules need every object; the failures above say why
	}
	return append(problems, kubernetesRules(objs, facts)...)
}

// renderKustomization runs kustomize (its library, as `kubectl apply -k`
// does) on dir and returns one YAML document per object.
func renderKustomization(dir string) ([][]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return nil, err
	}
	var docs [][]byte
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		docs = append(docs, doc)
	}
	return docs, nil
}

// orphanManifests reports the YAML files of dir that kustomization.yaml
// does not list: they would be neither applied nor validated.
func orphanManifests(dir string) []error {
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return []error{err}
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		return []error{fmt.Errorf("kustomization.yaml: %w", err)}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil {
		return []error{err}
	}
	var problems []error
	for _, f := range files {
		name := filepath.Base(f)
		if name != "kustomization.yaml" && !slices.Contains(k.Resources, name) {
			problems = append(problems, fmt.Errorf("%s: not listed in kustomization.yaml's resources, so neither applied nor validated", name))
		}
	}
	return problems
}

// k8sValidator validates one object three ways; see validate.
type k8sValidator struct {
	server  *validator.Validator
	paths   map[string]openapi.GroupVersion
	schemas map[schema.GroupVersionKind]*openapi3.Schema // loaded per group-version on first use
	decoder runtime.Decoder
}

// newK8sValidator loads the built-in schemas of a Kubernetes version.
func newK8sValidator(version string) (*k8sValidator, error) {
	client := openapiclient.NewOverlay(openapiclient.HardcodedPatchLoader(version), openapiclient.NewHardcodedBuiltins(version))
	server, err := validator.New(client)
	if err != nil {
		return nil, fmt.Errorf("kubectl-validate: %w", err)
	}
	paths, err := openapiclient.NewHardcodedBuiltins(version).Paths()
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("kubectl-validate has no built-in schemas for Kubernetes %s: %v", version, err)
	}
	return &k8sValidator{
		server:  server,
		paths:   paths,
		schemas: map[schema.GroupVersionKind]*openapi3.Schema{},
		decoder: serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer(),
	}, nil
}

// validate checks one YAML document and returns it decoded into its
// k8s.io/api type (nil when it does not decode):
//
//   - kubectl-validate: the API server's own validation of an object
//     against its structural schema (types, unknown fields, formats, the
//     schemas' x-kubernetes validations);
//   - kin-openapi against the same OpenAPI v3 schema, for what the first
//     leaves out: required fields;
//   - a strict decode into the Go type, as the API server decodes: unknown
//     and duplicate fields, values a type rejects (quantities).
func (v *k8sValidator) validate(doc []byte) (runtime.Object, []error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return nil, []error{err}
	}
	where := meta.Kind + "/" + meta.Metadata.Name
	var problems []error
	gvk, parsed, err := v.server.Parse(doc)
	if err == nil {
		err = v.server.Validate(parsed)
	}
	if err != nil {
		problems = append(problems, fmt.Errorf("%s: kubectl-validate: %w", where, err))
	}
	if err := v.validateOpenAPI(gvk, doc); err != nil {
		problems = append(problems, fmt.Errorf("%s: OpenAPI schema: %w", where, err))
	}
	obj, _, err := v.decoder.Decode(doc, nil, nil)
	if err != nil {
		return nil, append(problems, fmt.Errorf("%s: strict decode: %w", where, err))
	}
	return obj, problems
}

// validateOpenAPI validates doc against the component schema that declares
// gvk (x-kubernetes-group-version-kind) in its group-version's document.
func (v *k8sValidator) validateOpenAPI(gvk schema.GroupVersionKind, doc []byte) error {
	if gvk.Empty() {
		return errors.New("no apiVersion or kind")
	}
	s, err := v.schemaFor(gvk)
	if err != nil {
		return err
	}
	var value any
	if err := yaml.Unmarshal(doc, &value); err != nil {
		return err
	}
	// Through JSON, as the API server sees it (numbers as float64).
	raw, err := json.Marshal(value)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &value); err != nil {
		return err
	}
	return s.VisitJSON(value, openapi3.MultiErrors(), openapi3.DisableSchemaErrorDetails())
}

// schemaFor loads gvk's group-version document on first use.
func (v *k8sValidator) schemaFor(gvk schema.GroupVersionKind) (*openapi3.Schema, error) {
	if s, ok := v.schemas[gvk]; ok {
		return s, nil
	}
	path := "apis/" + gvk.Group + "/" + gvk.Version
	if gvk.Group == "" {
		path = "api/" + gvk.Version
	}
	gv, ok := v.paths[path]
	if !ok {
		return nil, fmt.Errorf("no schema for %s in Kubernetes %s", gvk.GroupVersion(), kubernetesVersion)
	}
	raw, err := gv.Schema("application/json")
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", path, err)
	}
	spec, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("load schema of %s: %w", path, err)
	}
	for _, ref := range spec.Components.Schemas {
		if ref.Value == nil {
			continue
		}
		var declared []schema.GroupVersionKind
		if ext, ok := ref.Value.Extensions["x-kubernetes-group-version-kind"]; ok {
			b, _ := json.Marshal(ext)
			_ = json.Unmarshal(b, &declared)
		}
		for _, d := range declared {
			v.schemas[d] = ref.Value
		}
	}
	s, ok := v.schemas[gvk]
	if !ok {
		return nil, fmt.Errorf("no schema for kind %s in %s", gvk.Kind, path)
	}
	return s, nil
}
