package parameters

import (
	"strings"
	"testing"

	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
)

func TestResolvedTextsPutTheValuesBackAsTheGenericPolicyDoes(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"a text without placeholders is itself", "sts.amazonaws.com", `"sts.amazonaws.com"`},
		{"a placeholder is the value at its position, none without values",
			"arn:{value:1}/x", `(size(variables.values) == 0 ? "arn:{value:1}/x" : "arn:" + variables.values[?1].orValue('') + "/x")`},
		{"placeholders past the fourth stay as they are, as in the generic policy",
			"{value:4}{value:0}", `(size(variables.values) == 0 ? "{value:4}{value:0}" : "{value:4}" + variables.values[?0].orValue(''))`},
		{"quotes and backslashes are escaped", `C:\x"`, `"C:\\x\""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolved(tc.text); got != tc.want {
				t.Errorf("resolved(%q) = %s, want %s", tc.text, got, tc.want)
			}
		})
	}
}

func TestWrittenRulesAreBoundedAndEndWithWhatTheGenericPolicyReads(t *testing.T) {
	if _, err := WrittenRules(make([]v1alpha1.Injection, MaxWrittenEntries+1), 0); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("err %v, want the bound", err)
	}
	vars, err := WrittenRules([]v1alpha1.Injection{{Provider: "aws", Env: []v1alpha1.EnvGroup{{Name: "g"}}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vars {
		names = append(names, v.Name)
	}
	// The generic policy's newAnnotations, newLabels and mutation read
	// these.
	for _, want := range []string{"initContainers", "containers", "additions", "newVolumes", "addedAnnotations", "addedLabels", "mayWarn", "mayDeny"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("variables %v lack %s", names, want)
		}
	}
	if names[len(names)-1] != "mayDeny" {
		t.Errorf("variables %v do not end with mayDeny", names)
	}
}
