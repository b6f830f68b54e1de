package mutate_test

import (
	"bytes"
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers"
)

func TestMarshalPatchIsWhatEncodingJSONWrites(t *testing.T) {
	prop := corev1.MountPropagationHostToContainer
	ops := []mutate.Op{
		{Op: "add", Path: "/metadata/annotations", Value: map[string]string{"b": "2", "a/x": `{"json":"in <a> string & more"}`, "c": "tab\tnew\nline \u2028 é \x01"}},
		{Op: "add", Path: "/metadata/annotations/cloud.google.com~1x", Value: "plain"},
		{Op: "add", Path: "/metadata/labels/bad", Value: "invalid \xff utf-8"},
		{Op: "add", Path: "/spec/volumes", Value: []corev1.Volume{providers.TokenVolume("v", "aud", 600, "token")}},
		{Op: "add", Path: "/spec/volumes/-", Value: providers.TokenVolume("w", "aud", 600, "token")},
		{Op: "add", Path: "/spec/containers/0/env", Value: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "EMPTY"}, {Name: "REF", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
		{Op: "add", Path: "/spec/containers/0/env/-", Value: corev1.EnvVar{Name: "B", Value: `quote " back \ slash`}},
		{Op: "add", Path: "/spec/containers/0/volumeMounts", Value: []corev1.VolumeMount{{Name: "v", MountPath: "/p", ReadOnly: true}, {Name: "w", MountPath: "/q"}}},
		{Op: "add", Path: "/spec/containers/1/volumeMounts/-", Value: corev1.VolumeMount{Name: "v", MountPath: "/p", SubPath: "s", MountPropagation: &prop}},
	}
	got, err := mutate.MarshalPatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("MarshalPatch differs from encoding/json\n got %s\nwant %s", got, want)
	}
}

// FuzzMarshalPatchStrings checks the direct string encoding against
// encoding/json on arbitrary strings.
func FuzzMarshalPatchStrings(f *testing.F) {
	for _, s := range []string{"", "plain", "quote \" back \\", "<&>", "\u2028\u2029", "\x00\x1f\x7f", "\xff\xfe", "é日本"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		ops := []mutate.Op{
			{Op: "add", Path: "/metadata/annotations", Value: map[string]string{k: v}},
			{Op: "add", Path: "/x/" + k, Value: corev1.EnvVar{Name: k, Value: v}},
			{Op: "add", Path: "/y", Value: []corev1.VolumeMount{{Name: v, MountPath: k, ReadOnly: len(v)%2 == 0}}},
		}
		got, err := mutate.MarshalPatch(ops)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(ops)
		if !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	})
}
