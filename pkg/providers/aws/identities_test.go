package aws

import (
	"strings"
	"testing"
)

func TestIdentitiesFilesAreReadAsTheEKSWebhookWritesThemAndBadEntriesRefused(t *testing.T) {
	for _, c := range []struct {
		name, data, says string
	}{
		{"an entry per namespace and name, and one for every namespace",
			`{"team-a/app":{"RoleARN":"arn:aws:iam::111122223333:role/app","Audience":"sts.amazonaws.com","UseRegionalSTS":true,"TokenExpiration":0},"*/reporter":{"RoleARN":"arn:aws-cn:iam::111122223333:role/r"}}`, ""},
		{"not JSON", `team-a/app: arn`, "expected {"},
		{"a key without a namespace", `{"app":{"RoleARN":"arn:aws:iam::111122223333:role/app"}}`, `key "app": expected namespace/name or */name`},
		{"a namespace prefix wildcard, which the EKS webhook's README shows but its code never matches", `{"test-*/app":{"RoleARN":"arn:aws:iam::111122223333:role/app"}}`, `key "test-*/app"`},
		{"a role that is not an ARN", `{"team-a/app":{"RoleARN":"app"}}`, `team-a/app: RoleARN "app": expected arn:`},
		{"an expiration out of range", `{"team-a/app":{"RoleARN":"arn:aws:iam::111122223333:role/app","TokenExpiration":60}}`, "TokenExpiration 60"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseIdentities([]byte(c.data))
			if c.says == "" {
				if err != nil || len(m) != 2 {
					t.Fatalf("parsed %v, %v", m, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %v, want one saying %q", err, c.says)
			}
		})
	}
}
