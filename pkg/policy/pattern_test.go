package policy

import "testing"

func TestAmbiguousPlaceholdersAreFound(t *testing.T) {
	tests := []struct {
		pattern   string
		ambiguous bool
	}{
		{"arn:aws:iam::111122223333:role/{namespace}-{serviceaccount}", true},
		{"arn:aws:iam::111122223333:role/{namespace}{serviceaccount}", true},
		{"arn:aws:iam::111122223333:role/tenants/{namespace}*", true},
		{"arn:aws:iam::111122223333:role/tenants/{namespace}-*", true},
		{"arn:aws:iam::111122223333:role/*-{serviceaccount}", true},
		{"arn:aws:iam::111122223333:role/{serviceaccount}.{namespace}", false},
		{"arn:aws:iam::111122223333:role/tenants/{namespace}/*", false},
		{"arn:aws:iam::111122223333:role/{namespace}/{serviceaccount}", false},
		// A dot can be in a serviceaccount name, never in a namespace's.
		{"arn:aws:iam::111122223333:role/{namespace}.{serviceaccount}", false},
		{"arn:aws:iam::111122223333:role/{namespace}-app", false},
		{"*@{namespace}-prj.iam.gserviceaccount.com", false},
		{"*-{namespace}@prj.iam.gserviceaccount.com", true},
		{"*@prj.iam.gserviceaccount.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			why := ambiguity(tt.pattern)
			if (why != "") != tt.ambiguous {
				t.Errorf("ambiguity(%q) = %q, want ambiguous %t", tt.pattern, why, tt.ambiguous)
			}
		})
	}
}
