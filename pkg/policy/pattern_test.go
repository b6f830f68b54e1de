package policy

import (
	"regexp"
	"strings"
	"testing"
)

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
		// A separator in another case holds too where the cloud ignores case.
		{"{namespace}Role{serviceaccount}", true},
		// The first character of a name's alphabet holds too.
		{"arn:aws:iam::111122223333:role/{namespace}a{serviceaccount}", true},
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

func TestPatternsAsRegularExpressions(t *testing.T) {
	tests := []struct {
		pattern, namespace string
		fold               bool
		want               string
	}{
		{"arn:aws:iam::1:role/tenants/{namespace}/*", "team", false, `^(?s)arn:aws:iam::1:role/tenants/team/.*$`},
		{"*@{namespace}-prj.iam.gserviceaccount.com", "a.b", true, `(?i)^(?s).*@a\.b-prj\.iam\.gserviceaccount\.com$`},
		{"role/{serviceaccount}+(x)", "n", false, `^(?s)role/{serviceaccount}\+\(x\)$`},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p, err := compilePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.regexp(tt.namespace, tt.fold); got != tt.want {
				t.Errorf("regexp = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestRegularExpressionsMatchAsPatternsDo: policy mode's admission
// policies match the expressions, the webhook the patterns: both must
// decide alike.
func TestRegularExpressionsMatchAsPatternsDo(t *testing.T) {
	patterns := []string{"a*b", "*", "x{namespace}*{serviceaccount}", "{serviceaccount}", "*.{namespace}.*", "arn:*:role/{namespace}/*", "A*"}
	values := []string{"", "ab", "aXb", "a", "b", "xns.1-sa.2", "xns.1sa.2", "sa.2", "SA.2", "q.ns.1.z", "arn:aws:role/ns.1/app", "arn:aws:role/ns.1", "a\nb", "aB", "Ab"}
	subj := subject{namespace: "ns.1", serviceAccount: "sa.2"}
	for _, raw := range patterns {
		p, err := compilePattern(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, fold := range []bool{false, true} {
			re := regexp.MustCompile(strings.ReplaceAll(p.regexp(subj.namespace, fold), ServiceAccountMarker, regexp.QuoteMeta(subj.serviceAccount)))
			for _, v := range values {
				if got, want := re.MatchString(v), p.match(v, subj, fold); got != want {
					t.Errorf("pattern %q (fold %t) on %q: expression says %t, pattern %t", raw, fold, v, got, want)
				}
			}
		}
	}
}
