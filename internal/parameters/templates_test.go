package parameters

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
)

func injection(source, value string, annotations map[string]string) v1alpha1.Injection {
	return v1alpha1.Injection{Provider: "aws", Source: source, Warnings: []string{"w " + source},
		Env:         []v1alpha1.EnvGroup{{Name: "g", Vars: []corev1.EnvVar{{Name: "ROLE", Value: value}, {Name: "REF", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}},
		Annotations: annotations}
}

func TestTemplater(t *testing.T) {
	t.Run("two serviceaccounts that differ only in their values share a template, and read back as they were", func(t *testing.T) {
		tpl := newTemplater()
		var got []v1alpha1.ServiceAccountParameters
		for _, name := range []string{"alpha-app", "beta-app"} {
			arn := "arn:aws:iam::111122223333:role/" + name
			orig := injection(`serviceaccount "team/`+name+`" annotation role`, arn, map[string]string{"cred": `{"role":"` + arn + `"}`})
			p := v1alpha1.ServiceAccountParameters{Injections: []v1alpha1.Injection{orig}}
			tpl.add(templatizeAll(p.Injections, "team", name, map[string]string{"role": arn, "short": "x"}), &p)
			if len(p.Injections) != 0 || len(p.Entries) != 1 || !reflect.DeepEqual(p.Values, []string{arn, name}) {
				t.Fatalf("%s: %+v", name, p)
			}
			back := emitted(resolve(tpl.templates[p.Entries[0]], p.Values), "team", name)
			if !reflect.DeepEqual(back, orig) {
				t.Errorf("%s reads back as %+v, want %+v", name, back, orig)
			}
			got = append(got, p)
		}
		if len(tpl.templates) != 1 || got[0].Entries[0] != got[1].Entries[0] {
			t.Errorf("%d templates, entries %v and %v: want one shared", len(tpl.templates), got[0].Entries, got[1].Entries)
		}
		if s := tpl.templates[0].Env[0].Vars[0].Value; s != "{value:0}" {
			t.Errorf("the template's value is %q", s)
		}
		if s := tpl.templates[0].Source; s != `serviceaccount "team/{serviceaccount}" annotation role` {
			t.Errorf("the template's source is %q", s)
		}
	})
	t.Run("a serviceaccount whose text already holds a placeholder keeps its injections as they are", func(t *testing.T) {
		for name, orig := range map[string]v1alpha1.Injection{
			"a value placeholder in a variable": injection(`serviceaccount "team/app-one"`, "arn:aws:iam::111122223333:role/app-one{value:1}", nil),
			"an unused value placeholder":       injection(`serviceaccount "team/app-one"`, "arn:aws:iam::111122223333:role/x{value:3}", nil),
		} {
			t.Run(name, func(t *testing.T) {
				tpl := newTemplater()
				p := v1alpha1.ServiceAccountParameters{Injections: []v1alpha1.Injection{orig}}
				tpl.add(templatizeAll(p.Injections, "team", "app-one", map[string]string{"role": orig.Env[0].Vars[0].Value}), &p)
				if len(p.Entries) != 0 || len(p.Values) != 0 || !reflect.DeepEqual(p.Injections, []v1alpha1.Injection{orig}) || len(tpl.templates) != 0 {
					t.Errorf("got %+v and %d templates; want the injection kept as it is", p, len(tpl.templates))
				}
			})
		}
	})
	t.Run("at most four values are stood for, the longest first", func(t *testing.T) {
		ann := map[string]string{}
		text := ""
		for _, v := range []string{"aaaaaaaa", "bbbbbbbbb", "cccccccccc", "ddddddddddd", "eeeeeeeeeeee"} {
			ann[v] = v
			text += v + " "
		}
		tpl := newTemplater()
		p := v1alpha1.ServiceAccountParameters{Injections: []v1alpha1.Injection{injection("s", text, nil)}}
		tpl.add(templatizeAll(p.Injections, "team", "n", ann), &p)
		if want := []string{"eeeeeeeeeeee", "ddddddddddd", "cccccccccc", "bbbbbbbbb"}; !reflect.DeepEqual(p.Values, want) {
			t.Errorf("values %q, want %q", p.Values, want)
		}
	})
	t.Run("a namespace whose templates are full keeps further injections as they are", func(t *testing.T) {
		tpl := newTemplater()
		tpl.templates = make([]v1alpha1.Injection, MaxTemplates)
		p := v1alpha1.ServiceAccountParameters{Injections: []v1alpha1.Injection{injection("s", "v", nil)}}
		tpl.add(templatizeAll(p.Injections, "team", "n", nil), &p)
		if len(p.Injections) != 1 || len(p.Entries) != 0 || len(tpl.templates) != MaxTemplates {
			t.Errorf("got %+v, %d templates", p, len(tpl.templates))
		}
	})
}
