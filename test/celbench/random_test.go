package celbench

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// randomEntries are entries of the shape the CRD allows but no provider
// is held to: every field the rules read, drawn at random, with
// placeholders in the texts that take values.
func randomEntries(r *rand.Rand) []map[string]any {
	pick := func(xs ...string) string { return xs[r.Intn(len(xs))] }
	text := func() string {
		s := ""
		for range r.Intn(3) {
			s += pick("a", "{value:0}", "{value:1}", "{value:3}", "/x", "{value:4}")
		}
		return s
	}
	var out []map[string]any
	for n := range 1 + r.Intn(4) {
		provider := pick("aws", "azure", "gcp")
		e := map[string]any{"provider": provider}
		if os := pick("", "", "linux", "windows"); os != "" {
			e["os"] = os
		}
		var reqs []any
		for range r.Intn(3) {
			op := pick("In", "NotIn", "Exists", "DoesNotExist")
			req := map[string]any{"key": pick("k1", "k2"), "operator": op}
			if op == "In" || op == "NotIn" {
				req["values"] = []any{pick("a", "b"), pick("a", "c")}
			}
			reqs = append(reqs, req)
		}
		if len(reqs) > 0 {
			e["podLabels"] = reqs
		}
		if r.Intn(3) == 0 {
			e["warnings"] = []any{text()}
		}
		if r.Intn(5) == 0 {
			e["denied"] = []any{text()}
		}
		if r.Intn(4) > 0 {
			var groups, names []any
			for g := range 1 + r.Intn(2) {
				var vars []any
				for range 1 + r.Intn(2) {
					name := pick("A", "B", "C", "D")
					v := map[string]any{"name": name}
					switch r.Intn(4) {
					case 0:
						v["valueFrom"] = map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.name"}}
					case 1:
					default:
						if t := text(); t != "" { // as the CRD holds it: omitted when empty
							v["value"] = t
						}
					}
					vars = append(vars, v)
					names = append(names, name)
				}
				groups = append(groups, map[string]any{"name": fmt.Sprint("g", g), "vars": vars})
			}
			e["env"] = groups
			if r.Intn(2) == 0 {
				e["tokenFileVariables"] = []any{names[r.Intn(len(names))]}
			}
			if r.Intn(3) == 0 {
				e["overridingVariables"] = []any{"O"}
			}
		}
		if r.Intn(4) > 0 {
			var vols, mounts []any
			for v := range 1 + r.Intn(2) {
				name := fmt.Sprintf("v-%s-%d", provider, v)
				vol := map[string]any{"name": name}
				switch r.Intn(3) {
				case 0:
					vol["projected"] = map[string]any{"sources": []any{map[string]any{"serviceAccountToken": map[string]any{
						"audience": pick("aud", "other"), "expirationSeconds": float64(3600), "path": pick("token", "t2")}}}}
				case 1:
					vol["emptyDir"] = map[string]any{}
				default:
					vol["downwardAPI"] = map[string]any{"items": []any{map[string]any{"path": "p", "fieldRef": map[string]any{"fieldPath": "metadata.name"}}}}
				}
				vols = append(vols, vol)
				mounts = append(mounts, map[string]any{"volumeName": name, "mountPath": pick("/m/1", "/m/2", "/m/"+name)})
			}
			e["volumes"], e["mounts"] = vols, mounts
		}
		if r.Intn(3) == 0 {
			e["annotations"] = map[string]any{"x/" + provider: text()}
		}
		if r.Intn(4) == 0 {
			e["labels"] = map[string]any{"l/" + provider: "v"}
		}
		if r.Intn(2) == 0 {
			e["skipContainersAnnotation"], e["containersSeparator"] = "skip/"+provider, pick(",", ";")
			if r.Intn(2) == 0 {
				e["onlyContainersAnnotation"] = "only/" + provider
			}
		}
		if r.Intn(3) == 0 {
			e["expiration"] = map[string]any{"annotation": pick("exp/a", "exp/b"), "default": float64(5), "min": float64(2), "max": float64(10),
				"clamp": r.Intn(2) == 0, "lenient": r.Intn(2) == 0, "warnInvalid": r.Intn(3) == 0}
		}
		if r.Intn(3) == 0 {
			e["podAnnotationPrefixes"] = []any{pick("x/", "p/")}
		}
		_ = n
		out = append(out, e)
	}
	return out
}

// randomTenantPod is a pod that presents what randomEntries read.
func randomTenantPod(r *rand.Rand) *corev1.Pod {
	pick := func(xs ...string) string { return xs[r.Intn(len(xs))] }
	p := pod()
	p.Spec.ServiceAccountName = "s0"
	p.Labels = map[string]string{}
	for _, k := range []string{"k1", "k2", "l/aws"} {
		if v := pick("", "a", "b", "c", "v"); v != "" {
			p.Labels[k] = v
		}
	}
	if r.Intn(4) == 0 {
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "windows"}
	}
	withInitContainer(r, p)
	if plain(r) {
		return p
	}
	ann := map[string]string{}
	for _, k := range []string{"exp/a", "exp/b"} {
		if v := pick("", "", "3", "1", "99", "zz"); v != "" {
			ann[k] = v
		}
	}
	for _, k := range []string{"skip/aws", "only/azure", "skip/gcp"} {
		if v := pick("", "", "app", "proxy;logs", "logs, app"); v != "" {
			ann[k] = v
		}
	}
	if r.Intn(3) == 0 {
		ann["x/"+pick("aws", "azure")] = pick("a", "VAL0VAL0/x", "other")
	}
	if r.Intn(3) == 0 {
		ann["p/"+pick("one", "two")] = "y"
	}
	if len(ann) > 0 {
		p.Annotations = ann
	}
	for _, c := range allContainers(p) {
		if r.Intn(3) == 0 {
			c.Env = append(c.Env, corev1.EnvVar{Name: pick("A", "B", "O"), Value: pick("a", "VAL0VAL0", "")})
		}
		if r.Intn(4) == 0 {
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: pick("v-aws-0", "mine"), MountPath: pick("/m/1", "/m/v-aws-0")})
		}
	}
	if r.Intn(4) == 0 {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: pick("v-aws-0", "v-azure-0"), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	return p
}

// TestTheWrittenRulesDecideAsTheGenericOnesForAnyEntries holds the
// written policy (parameters.WrittenRules for each set) to the shipped
// policy for random entries within the CRD's limits (declarative
// providers write their own), templated with random values, and random
// pods presenting what they read.
func TestTheWrittenRulesDecideAsTheGenericOnesForAnyEntries(t *testing.T) {
	generic := mutatingPolicy(t)
	r := rand.New(rand.NewSource(3))
	const sets, pods = 60, 12
	compared, acted, quick := 0, 0, 0
	for n := range sets {
		entries := randomEntries(r)
		var templates, indices []any
		for i, e := range entries {
			templates = append(templates, e)
			indices = append(indices, int64(i))
		}
		var values []any
		for range r.Intn(5) {
			values = append(values, []string{"VAL0VAL0", "VAL1", "Q", "/v"}[r.Intn(4)])
		}
		sa := map[string]any{"entries": indices}
		if len(values) > 0 {
			sa["values"] = values // as sync writes it: omitted when empty
		}
		crd, records, written := writtenFor(t, generic, map[string]any{"templates": templates, "serviceAccounts": map[string]any{"s0": sa}})
		pr := rand.New(rand.NewSource(r.Int63()))
		var ps []*corev1.Pod
		for range pods {
			ps = append(ps, randomTenantPod(pr))
		}
		b, _ := json.Marshal(entries)
		a, q := compareOnPods(t, generic, written, crd, records, ps, fmt.Sprintf("set %d, entries %s, values %v", n, b, values))
		compared += len(ps)
		acted += a
		quick += q
	}
	checkCoverage(t, compared, acted, quick)
}

// TestAValueRepeatedInATemplateIsPutBackAsTheGenericPolicyDoes: a value
// that the text of an identity repeats (a tenant's annotation written
// into it many times) makes a template of as many parts; the written
// rules put them back without nesting past what CEL takes.
func TestAValueRepeatedInATemplateIsPutBackAsTheGenericPolicyDoes(t *testing.T) {
	generic := mutatingPolicy(t)
	for _, n := range []int{3, 9, 400} {
		t.Run(fmt.Sprintf("%d times", n), func(t *testing.T) {
			entry := map[string]any{"provider": "declarative", "env": []any{map[string]any{"name": "g", "vars": []any{
				map[string]any{"name": "AUDIENCE", "value": "<" + strings.Repeat("{value:0}-", n) + ">"}}}}}
			sa := map[string]any{"entries": []any{int64(0)}, "values": []any{"abcdefgh"}}
			crd, records, written := writtenFor(t, generic, map[string]any{"templates": []any{entry}, "serviceAccounts": map[string]any{"s0": sa}})
			p := pod()
			p.Spec.ServiceAccountName = "s0"
			if acted, _ := compareOnPods(t, generic, written, crd, records, []*corev1.Pod{p}, "a value repeated"); acted != 1 {
				t.Fatalf("the policies acted on %d pods, want 1", acted)
			}
		})
	}
}
