// chart-render: a stand-in for `helm template` and `helm lint`, for machines without the
// `helm` binary. It is NOT helm. It renders a chart the way Helm 3 does, with the same
// libraries for the parts that decide the output:
//
//   - Go text/template with sprig v3 (TxtFuncMap without env/expandenv), plus Helm's
//     include, tpl, required, toYaml, fromYaml, fromYamlArray, toJson, fromJson,
//     fromJsonArray and lookup (always empty, as in `helm template`);
//   - values: values.yaml, then -f files (later wins), then --set/--set-string, merged like
//     Helm (maps deep-merged, null deletes a key), parsed with ghodss/yaml (= sigs.k8s.io/yaml:
//     YAML -> JSON, numbers become float64) and validated against values.schema.json with
//     xeipuuv/gojsonschema (Helm's validator);
//   - .Release (Name, Namespace, Service=Helm, IsInstall, Revision), .Chart (Chart.yaml),
//     .Capabilities (KubeVersion, APIVersions.Has, HelmVersion), .Files (Get, GetBytes,
//     Lines), .Template (Name, BasePath); templates/_* are partials; NOTES.txt is not output;
//     missing values render empty (missingkey=zero, "<no value>" removed), --strict errors;
//   - output: each manifest split on `---`, parsed (invalid YAML is an error), sorted by
//     Helm's install order of kinds, printed as "---\n# Source: CHART/templates/FILE\nDOC";
//     hooks (helm.sh/hook) after the manifests; --skip-tests drops test hooks.
//
// Not supported: subcharts/dependencies, .helmignore, toToml, Files.Glob/AsConfig/AsSecrets,
// --set list indexes (a[0]=x), values templates. It exits non-zero if the chart uses them.
//
// Usage:
//
//	chart-render template [NAME] CHART [-n NS] [-f FILE]... [--set K=V]... [--set-string K=V]...
//	                      [--kube-version V] [-a API_VERSION]... [--only-api-versions]
//	                      [--skip-tests] [--strict]
//	chart-render lint CHART [-f FILE]... [--set K=V]... [--strict]
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	// Debian's GOPATH packages of semver v3 and sprig v3 (no /v3 in the import path).
	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
	"github.com/xeipuuv/gojsonschema"
)

// ---------------------------------------------------------------------------------------
// Chart

// Metadata mirrors Helm's chart.Metadata (the fields templates see as .Chart.X).
type Metadata struct {
	Name         string            `json:"name,omitempty"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []interface{}     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

type chartT struct {
	dir       string
	meta      *Metadata
	values    map[string]interface{}
	schema    []byte
	templates map[string]string // "templates/x.yaml" -> text
	files     map[string][]byte // every other file
}

func loadChart(dir string) (*chartT, error) {
	c := &chartT{dir: dir, templates: map[string]string{}, files: map[string][]byte{}}
	raw, err := ioutil.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("Chart.yaml: %v", err)
	}
	c.meta = &Metadata{}
	if err := yaml.Unmarshal(raw, c.meta); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %v", err)
	}
	if len(c.meta.Dependencies) > 0 {
		return nil, fmt.Errorf("Chart.yaml: dependencies are not supported by this stand-in renderer")
	}
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			if rel == "charts" {
				return fmt.Errorf("charts/: subcharts are not supported by this stand-in renderer")
			}
			return nil
		}
		data, err := ioutil.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case rel == "Chart.yaml":
		case rel == ".helmignore":
			return fmt.Errorf(".helmignore is not supported by this stand-in renderer")
		case rel == "values.yaml":
			c.values = map[string]interface{}{}
			if err := yaml.Unmarshal(data, &c.values); err != nil {
				return fmt.Errorf("values.yaml: %v", err)
			}
		case rel == "values.schema.json":
			c.schema = data
		case strings.HasPrefix(rel, "templates/"):
			c.templates[rel] = string(data)
		default:
			c.files[rel] = data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if c.values == nil {
		c.values = map[string]interface{}{}
	}
	return c, nil
}

// Files is .Files.
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string      { return string(f[name]) }
func (f Files) Lines(name string) []string {
	s := string(f[name])
	if s == "" {
		return []string{}
	}
	return strings.Split(s, "\n")
}

// ---------------------------------------------------------------------------------------
// Capabilities

type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (k KubeVersion) String() string     { return k.Version }
func (k KubeVersion) GitVersion() string { return k.Version }

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

// Has is true for "group/version" and "group/version/Kind".
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

// The API versions of a current cluster (Kubernetes 1.30: what `helm install` would discover
// there). `helm template` uses client-go's built-in list instead; for this chart both agree.
var defaultAPIVersions = []string{
	"v1", "admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "apiregistration.k8s.io/v1",
	"apps/v1", "authentication.k8s.io/v1", "authorization.k8s.io/v1", "autoscaling/v1",
	"autoscaling/v2", "batch/v1", "certificates.k8s.io/v1", "coordination.k8s.io/v1",
	"discovery.k8s.io/v1", "events.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1",
	"networking.k8s.io/v1", "node.k8s.io/v1", "policy/v1", "rbac.authorization.k8s.io/v1",
	"scheduling.k8s.io/v1", "storage.k8s.io/v1",
}

const defaultKubeVersion = "v1.30.0"

func capabilities(kubeVersion string, extra []string, only bool) (Capabilities, error) {
	v, err := semver.NewVersion(kubeVersion)
	if err != nil {
		return Capabilities{}, fmt.Errorf("--kube-version %q: %v", kubeVersion, err)
	}
	apis := VersionSet{}
	if !only {
		apis = append(apis, defaultAPIVersions...)
	}
	apis = append(apis, extra...)
	return Capabilities{
		KubeVersion: KubeVersion{
			Version: fmt.Sprintf("v%d.%d.%d", v.Major(), v.Minor(), v.Patch()),
			Major:   strconv.FormatUint(v.Major(), 10),
			Minor:   strconv.FormatUint(v.Minor(), 10),
		},
		APIVersions: apis,
		HelmVersion: map[string]string{"Version": "v3-compatible (chart-render stand-in)"},
	}, nil
}

// ---------------------------------------------------------------------------------------
// Values

func readValuesFile(p string) (map[string]interface{}, error) {
	data, err := ioutil.ReadFile(p)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", p, err)
	}
	return m, nil
}

// mergeUser merges user-supplied maps (later wins, maps deep-merged), like helm's mergeMaps.
func mergeUser(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]interface{}); ok {
			if am, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeUser(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// coalesce lays user values over the chart's defaults; a user null deletes the key.
func coalesce(defaults, user map[string]interface{}) map[string]interface{} {
	out := deepCopy(defaults).(map[string]interface{})
	for k, v := range user {
		if v == nil {
			delete(out, k)
			continue
		}
		um, uok := v.(map[string]interface{})
		dm, dok := out[k].(map[string]interface{})
		if uok && dok {
			out[k] = coalesce(dm, um)
		} else {
			out[k] = deepCopy(v)
		}
	}
	return out
}

func deepCopy(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, x := range t {
			l[i] = deepCopy(x)
		}
		return l
	}
	return v
}

// parseSet applies "a.b=c,d=e" (helm --set syntax without list indexes) to m.
func parseSet(m map[string]interface{}, expr string, asString bool) error {
	for _, pair := range splitUnescaped(expr, ',', true) {
		eq := strings.Index(pair, "=")
		if eq <= 0 {
			return fmt.Errorf("--set %q: want key=value", pair)
		}
		key, raw := pair[:eq], pair[eq+1:]
		if strings.ContainsAny(key, "[]") {
			return fmt.Errorf("--set %q: list indexes are not supported by this stand-in renderer", pair)
		}
		var val interface{} = unescape(raw)
		if !asString {
			val = typedScalar(unescape(raw))
			if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
				items := []interface{}{}
				if inner := raw[1 : len(raw)-1]; inner != "" {
					for _, s := range splitUnescaped(inner, ',', false) {
						items = append(items, typedScalar(s))
					}
				}
				val = items
			}
		}
		parts := splitUnescaped(key, '.', false)
		cur := m
		for _, p := range parts[:len(parts)-1] {
			next, ok := cur[p].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				cur[p] = next
			}
			cur = next
		}
		cur[parts[len(parts)-1]] = val
	}
	return nil
}

func unescape(s string) string { return strings.Join(splitUnescaped(s, 0, false), "") }

// splitUnescaped splits on sep outside {...}; keep: leave backslash escapes in the parts.
func splitUnescaped(s string, sep byte, keep bool) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if keep {
				cur.WriteByte('\\')
			}
			cur.WriteByte(s[i+1])
			i++
			continue
		}
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		}
		if s[i] == sep && depth == 0 {
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	return append(out, cur.String())
}

// typedScalar types a --set value like helm's strvals: int64, bool, null, else string.
func typedScalar(s string) interface{} {
	switch s {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && (s == "0" || !strings.HasPrefix(s, "0")) {
		return n
	}
	return s
}

func validateSchema(schema []byte, values map[string]interface{}) error {
	if schema == nil {
		return nil
	}
	doc, err := json.Marshal(values)
	if err != nil {
		return err
	}
	res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewBytesLoader(doc))
	if err != nil {
		return fmt.Errorf("values.schema.json: %v", err)
	}
	if res.Valid() {
		return nil
	}
	var b strings.Builder
	for _, e := range res.Errors() {
		fmt.Fprintf(&b, "- %s\n", e)
	}
	return fmt.Errorf("values don't meet the specifications of the schema(s) in the following chart(s):\n%s", b.String())
}

// ---------------------------------------------------------------------------------------
// Rendering

type options struct {
	release     string
	namespace   string
	valueFiles  []string
	sets        []string
	setStrings  []string
	kubeVersion string
	apiVersions []string
	onlyAPIs    bool
	skipTests   bool
	strict      bool
	lint        bool
}

func userValues(o *options) (map[string]interface{}, error) {
	user := map[string]interface{}{}
	for _, f := range o.valueFiles {
		m, err := readValuesFile(f)
		if err != nil {
			return nil, err
		}
		user = mergeUser(user, m)
	}
	for _, s := range o.sets {
		if err := parseSet(user, s, false); err != nil {
			return nil, err
		}
	}
	for _, s := range o.setStrings {
		if err := parseSet(user, s, true); err != nil {
			return nil, err
		}
	}
	return user, nil
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func funcMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = toYAML
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromYamlArray"] = func(s string) []interface{} {
		a := []interface{}{}
		if err := yaml.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	f["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromJsonArray"] = func(s string) []interface{} {
		a := []interface{}{}
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	// `helm template` has no cluster: lookup finds nothing.
	f["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	return f
}

// byPathLen: deeper paths first, then by name (Helm parses templates in this order).
func sortTemplateNames(names []string) {
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		ca, cb := strings.Count(a, "/"), strings.Count(b, "/")
		if ca != cb {
			return ca > cb
		}
		return a > b
	})
}

var errMarker = regexp.MustCompile(`CHART_RENDER_ERR\((.*)\)`)

// render returns the rendered text of every non-partial template, keyed by
// "CHART/templates/FILE".
func render(c *chartT, values map[string]interface{}, caps Capabilities, o *options) (map[string]string, error) {
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": o.release, "Namespace": o.namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Chart":        c.meta,
		"Capabilities": caps,
		"Files":        Files(c.files),
	}
	basePath := path.Join(c.meta.Name, "templates")
	t := template.New("gotpl")
	if o.strict {
		t.Option("missingkey=error")
	} else {
		t.Option("missingkey=zero")
	}
	fm := funcMap()
	included := map[string]int{}
	fm["include"] = func(name string, data interface{}) (string, error) {
		if included[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		included[name]++
		defer func() { included[name]-- }()
		var buf strings.Builder
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	fm["required"] = func(msg string, v interface{}) (interface{}, error) {
		if s, ok := v.(string); v == nil || (ok && s == "") {
			if o.lint {
				fmt.Fprintf(os.Stderr, "[INFO] Missing required value: %s\n", msg)
				return "", nil
			}
			return v, fmt.Errorf("CHART_RENDER_ERR(%s)", msg)
		}
		return v, nil
	}
	fm["tpl"] = func(text string, vals map[string]interface{}) (string, error) {
		name := fmt.Sprintf("%v", vals["Template"].(map[string]interface{})["Name"])
		inner, err := t.Clone()
		if err != nil {
			return "", err
		}
		if _, err := inner.New(name).Parse(text); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		var buf strings.Builder
		if err := inner.ExecuteTemplate(&buf, name, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	t.Funcs(fm)

	names := make([]string, 0, len(c.templates))
	for rel := range c.templates {
		names = append(names, path.Join(c.meta.Name, rel))
	}
	sortTemplateNames(names)
	for _, name := range names {
		rel := strings.TrimPrefix(name, c.meta.Name+"/")
		if _, err := t.New(name).Parse(c.templates[rel]); err != nil {
			return nil, fmt.Errorf("parse error in %s: %v", name, err)
		}
	}
	out := map[string]string{}
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		top["Template"] = map[string]interface{}{"Name": name, "BasePath": basePath}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name, top); err != nil {
			// Like helm: "execution error at (FILE:LINE:COL): MESSAGE" for required/fail.
			msg := err.Error()
			if m := errMarker.FindStringSubmatch(msg); m != nil {
				if tokens := strings.SplitN(msg, ": ", 3); len(tokens) == 3 {
					return nil, fmt.Errorf("execution error at (%s): %s", tokens[1], m[1])
				}
				msg = m[1]
			}
			return nil, fmt.Errorf("execution error in %s: %s", name, msg)
		}
		out[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return out, nil
}

// ---------------------------------------------------------------------------------------
// Splitting and sorting, as Helm's releaseutil does

var sep = regexp.MustCompile("(?:^|\\s*\n)---\\s*")

func splitManifests(big string) []string {
	var docs []string
	for _, d := range sep.Split(strings.TrimSpace(big), -1) {
		if d == "" {
			continue
		}
		docs = append(docs, strings.TrimSpace(d))
	}
	return docs
}

type head struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   *struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

type manifest struct {
	source  string
	content string
	head    head
}

var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService",
}

func sortByKind(ms []manifest) {
	order := map[string]int{}
	for i, k := range installOrder {
		order[k] = i
	}
	sort.SliceStable(ms, func(i, j int) bool {
		a, aok := order[ms[i].head.Kind]
		b, bok := order[ms[j].head.Kind]
		switch {
		case !aok && !bok:
			return ms[i].head.Kind < ms[j].head.Kind
		case !aok:
			return false
		case !bok:
			return true
		}
		return a < b
	})
}

// classify splits rendered files into manifests and hooks (NOTES.txt dropped).
func classify(rendered map[string]string) (manifests, hooks []manifest, err error) {
	names := make([]string, 0, len(rendered))
	for n := range rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") || strings.TrimSpace(rendered[name]) == "" {
			continue
		}
		for _, doc := range splitManifests(rendered[name]) {
			var h head
			if err := yaml.Unmarshal([]byte(doc), &h); err != nil {
				return nil, nil, fmt.Errorf("YAML parse error on %s: %v\n---- the document ----\n%s", name, err, doc)
			}
			m := manifest{source: name, content: doc, head: h}
			if h.Metadata != nil && h.Metadata.Annotations["helm.sh/hook"] != "" {
				hooks = append(hooks, m)
			} else {
				manifests = append(manifests, m)
			}
		}
	}
	sortByKind(manifests)
	return manifests, hooks, nil
}

func isTestHook(m manifest) bool {
	for _, h := range strings.Split(m.head.Metadata.Annotations["helm.sh/hook"], ",") {
		if h = strings.TrimSpace(h); h == "test" || h == "test-success" {
			return true
		}
	}
	return false
}

// prepare loads the chart, checks kubeVersion, builds and validates the values.
func prepare(chartDir string, o *options) (*chartT, map[string]interface{}, Capabilities, error) {
	c, err := loadChart(chartDir)
	if err != nil {
		return nil, nil, Capabilities{}, err
	}
	caps, err := capabilities(o.kubeVersion, o.apiVersions, o.onlyAPIs)
	if err != nil {
		return nil, nil, caps, err
	}
	if c.meta.KubeVersion != "" {
		constraint, err := semver.NewConstraint(c.meta.KubeVersion)
		if err != nil {
			return nil, nil, caps, fmt.Errorf("Chart.yaml: kubeVersion %q: %v", c.meta.KubeVersion, err)
		}
		v, _ := semver.NewVersion(caps.KubeVersion.Version)
		if !constraint.Check(v) {
			return nil, nil, caps, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", c.meta.KubeVersion, caps.KubeVersion.Version)
		}
	}
	user, err := userValues(o)
	if err != nil {
		return nil, nil, caps, err
	}
	values := coalesce(c.values, user)
	if err := validateSchema(c.schema, values); err != nil {
		return nil, nil, caps, err
	}
	return c, values, caps, nil
}

func cmdTemplate(chartDir string, o *options) error {
	c, values, caps, err := prepare(chartDir, o)
	if err != nil {
		return err
	}
	rendered, err := render(c, values, caps, o)
	if err != nil {
		return err
	}
	manifests, hooks, err := classify(rendered)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	for _, m := range hooks {
		if o.skipTests && isTestHook(m) {
			continue
		}
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	_, err = os.Stdout.Write(b.Bytes())
	return err
}

// ---------------------------------------------------------------------------------------
// Lint: Helm's chart checks (Chart.yaml, values and schema, templates render, every
// document is YAML with apiVersion, kind and a valid metadata.name), plus duplicates.

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dns1035Label     = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
)

func validName(kind, name string) error {
	switch kind {
	case "Service":
		if len(name) > 63 || !dns1035Label.MatchString(name) {
			return fmt.Errorf("%q is not a valid DNS-1035 label", name)
		}
	case "Namespace":
		if len(name) > 63 || !dns1123Label.MatchString(name) {
			return fmt.Errorf("%q is not a valid DNS-1123 label", name)
		}
	default:
		if len(name) > 253 || !dns1123Subdomain.MatchString(name) {
			return fmt.Errorf("%q is not a valid DNS-1123 subdomain", name)
		}
	}
	return nil
}

func cmdLint(chartDir string, o *options) error {
	var errs, warns []string
	errf := func(f string, a ...interface{}) { errs = append(errs, fmt.Sprintf(f, a...)) }
	warnf := func(f string, a ...interface{}) { warns = append(warns, fmt.Sprintf(f, a...)) }
	fmt.Printf("==> Linting %s (chart-render, a stand-in for helm lint)\n", chartDir)

	c, err := loadChart(chartDir)
	if err != nil {
		errf("%v", err)
	} else {
		m := c.meta
		if m.APIVersion != "v2" && m.APIVersion != "v1" {
			errf("Chart.yaml: apiVersion %q is not v1 or v2", m.APIVersion)
		}
		if m.Name == "" {
			errf("Chart.yaml: name is required")
		} else if abs, _ := filepath.Abs(chartDir); filepath.Base(abs) != m.Name {
			errf("Chart.yaml: directory name (%s) and chart name (%s) must match", filepath.Base(abs), m.Name)
		}
		if _, err := semver.StrictNewVersion(m.Version); err != nil {
			errf("Chart.yaml: version %q is not a valid SemVerV2", m.Version)
		}
		if m.AppVersion == "" {
			warnf("Chart.yaml: appVersion is recommended")
		}
		if m.Type != "" && m.Type != "application" && m.Type != "library" {
			errf("Chart.yaml: type %q is not application or library", m.Type)
		}
		if m.KubeVersion != "" {
			if _, err := semver.NewConstraint(m.KubeVersion); err != nil {
				errf("Chart.yaml: kubeVersion %q: %v", m.KubeVersion, err)
			}
		}
		if m.Icon == "" {
			fmt.Println("[INFO] Chart.yaml: icon is recommended")
		}
		if c.schema != nil {
			var js interface{}
			if err := json.Unmarshal(c.schema, &js); err != nil {
				errf("values.schema.json: %v", err)
			}
		}
		for rel := range c.templates {
			switch path.Ext(rel) {
			case ".yaml", ".yml", ".tpl", ".txt":
			default:
				errf("%s: file extension %q not one of .yaml, .yml, .tpl, .txt", rel, path.Ext(rel))
			}
		}
		if len(c.templates) == 0 {
			warnf("templates/: directory does not exist or is empty")
		}
	}
	if len(errs) == 0 {
		o.lint = true
		c, values, caps, err := prepare(chartDir, o)
		if err != nil {
			errf("%v", err)
		} else if rendered, err := render(c, values, caps, o); err != nil {
			errf("templates: %v", err)
		} else if manifests, hooks, err := classify(rendered); err != nil {
			errf("templates: %v", err)
		} else {
			seen := map[string]string{}
			for _, m := range append(manifests, hooks...) {
				h := m.head
				where := m.source
				var any interface{}
				if yaml.Unmarshal([]byte(m.content), &any); any == nil {
					continue // only comments (helm lint skips these too)
				}
				if h.APIVersion == "" {
					errf("%s: object has no apiVersion:\n%s", where, m.content)
				}
				if h.Kind == "" {
					errf("%s: object has no kind:\n%s", where, m.content)
					continue
				}
				if h.Metadata == nil || h.Metadata.Name == "" {
					errf("%s: %s has no metadata.name", where, h.Kind)
					continue
				}
				if err := validName(h.Kind, h.Metadata.Name); err != nil {
					errf("%s: %s: metadata.name %v", where, h.Kind, err)
				}
				if h.Metadata.Namespace != "" && !dns1123Label.MatchString(h.Metadata.Namespace) {
					errf("%s: %s %s: metadata.namespace %q is not a valid DNS-1123 label", where, h.Kind, h.Metadata.Name, h.Metadata.Namespace)
				}
				key := h.APIVersion + "|" + h.Kind + "|" + h.Metadata.Namespace + "|" + h.Metadata.Name
				if prev, dup := seen[key]; dup {
					errf("%s: %s %s is also defined in %s", where, h.Kind, h.Metadata.Name, prev)
				}
				seen[key] = where
				var obj map[string]interface{}
				_ = yaml.Unmarshal([]byte(m.content), &obj)
				switch h.Kind {
				case "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job":
					spec, _ := obj["spec"].(map[string]interface{})
					if h.Kind != "Job" && (spec == nil || spec["selector"] == nil) {
						errf("%s: %s %s: spec.selector is required", where, h.Kind, h.Metadata.Name)
					}
				}
			}
		}
	}
	for _, w := range warns {
		fmt.Println("[WARNING] " + w)
	}
	for _, e := range errs {
		fmt.Println("[ERROR] " + e)
	}
	failed := len(errs) > 0 || (o.strict && len(warns) > 0)
	n := 0
	if failed {
		n = 1
	}
	fmt.Printf("\n1 chart(s) linted, %d chart(s) failed\n", n)
	if failed {
		return fmt.Errorf("lint failed")
	}
	return nil
}

// ---------------------------------------------------------------------------------------

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  chart-render template [NAME] CHART [-n NS] [-f FILE]... [--set K=V]... [--set-string K=V]...
                        [--kube-version V] [-a API_VERSION]... [--only-api-versions]
                        [--skip-tests] [--strict]
  chart-render lint CHART [-f FILE]... [--set K=V]... [--set-string K=V]... [--strict]
A stand-in for helm template / helm lint (not helm): see the comment at the top of main.go.`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd := os.Args[1]
	o := &options{release: "release-name", namespace: "default", kubeVersion: defaultKubeVersion}
	var positional []string
	args := os.Args[2:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := a, "", false
		if strings.HasPrefix(a, "--") {
			if eq := strings.Index(a, "="); eq > 0 {
				name, val, hasVal = a[:eq], a[eq+1:], true
			}
		}
		next := func() string {
			if hasVal {
				return val
			}
			i++
			if i >= len(args) {
				fmt.Fprintf(os.Stderr, "%s needs a value\n", name)
				os.Exit(2)
			}
			return args[i]
		}
		switch name {
		case "-n", "--namespace":
			o.namespace = next()
		case "-f", "--values":
			o.valueFiles = append(o.valueFiles, next())
		case "--set":
			o.sets = append(o.sets, next())
		case "--set-string":
			o.setStrings = append(o.setStrings, next())
		case "--kube-version":
			o.kubeVersion = next()
		case "-a", "--api-versions":
			o.apiVersions = append(o.apiVersions, strings.Split(next(), ",")...)
		case "--only-api-versions":
			o.onlyAPIs = true
		case "--skip-tests":
			o.skipTests = true
		case "--strict":
			o.strict = true
		case "-h", "--help":
			usage()
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(os.Stderr, "unknown flag %s\n", a)
				usage()
			}
			positional = append(positional, a)
		}
	}
	var err error
	switch {
	case cmd == "template" && len(positional) == 1:
		err = cmdTemplate(positional[0], o)
	case cmd == "template" && len(positional) == 2:
		o.release = positional[0]
		err = cmdTemplate(positional[1], o)
	case cmd == "lint" && len(positional) == 1:
		err = cmdLint(positional[0], o)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}
