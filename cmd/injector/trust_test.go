package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pod-identity/injector/internal/golden"
	"github.com/pod-identity/injector/pkg/providers/providertest"
)

const testIssuer = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"

// TestTrustFixtures prints the trust of every case's ServiceAccounts
// (serviceaccounts.yaml: not an input.yaml, which the mutate fixtures
// would read) and compares it with expected.txt.
func TestTrustFixtures(t *testing.T) {
	cases, _ := filepath.Glob(filepath.Join(fixtures, "trust", "*", "serviceaccounts.yaml"))
	if len(cases) == 0 {
		t.Fatal("no trust fixtures")
	}
	for _, file := range cases {
		dir := filepath.Dir(file)
		name, _ := filepath.Rel(fixtures, dir)
		t.Run(filepath.ToSlash(name), func(t *testing.T) {
			args := append([]string{"trust", "-f", file, "--issuer", testIssuer}, providertest.Flags(t, dir)...)
			stdout, stderr, err := runInjector(args, nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			golden.Check(t, filepath.Join(dir, "expected.txt"), stdout)
			if strings.Contains(string(stdout), "system:serviceaccount:*") || strings.Contains(string(stdout), ":*\"") {
				t.Error("a wildcard subject was printed")
			}
		})
	}
}

func TestTrustRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x, namespace: team, annotations: {eks.amazonaws.com/role-arn: nope}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(fixtures, "trust", "aws-irsa", "serviceaccounts.yaml")
	plain := filepath.Join(dir, "plain.yaml")
	if err := os.WriteFile(plain, []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: plain, namespace: team}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	sa := func(ns, name string, annotations string) string {
		return "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: " + name + ", namespace: " + ns + ", annotations: {" + annotations + "}}\n---\n"
	}
	provider := "cloud.google.com/workload-identity-provider: projects/123456789012/locations/global/workloadIdentityPools/pool/providers/prov"
	tenantPolicy := write("tenant-policy.yaml", "apiVersion: pod-identity.io/v1alpha1\nkind: IdentityPolicy\nmetadata: {name: tenants}\nspec:\n  aws:\n    roleARNs: ['arn:aws:iam::111122223333:role/tenants/{namespace}/*']\n")
	labelPolicy := write("label-policy.yaml", "apiVersion: pod-identity.io/v1alpha1\nkind: IdentityPolicy\nmetadata: {name: tenants}\nspec:\n  namespaceSelector: {matchLabels: {tier: tenant}}\n  aws:\n    roleARNs: ['arn:aws:iam::111122223333:role/tenants/{namespace}/*']\n")
	beta := write("beta.yaml", sa("acme", "reports", "eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/tenants/beta/admin"))
	quoted := write("quoted.yaml", sa("acme", `'x" || true || "'`, provider))
	star := write("star.yaml", sa("'*'", "'*'", "eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/x"))
	newline := write("newline.yaml", sa("acme", `"x\ntouch /tmp/pwned\n#"`, "eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/x"))
	audiences := write("audiences.yaml", sa("acme", "hostile", provider+", cloud.google.com/audience: sts.example.com")+sa("acme", "victim", provider))
	issuerAudience := write("issuer-audience.yaml", sa("acme", "reports", "eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/x, eks.amazonaws.com/audience: '"+testIssuer+"'"))
	vaultShared := write("vault-shared.yaml", sa("acme", "a", "vault.pod-identity.io/role: shared")+sa("acme", "b", "vault.pod-identity.io/role: shared"))
	vaultCase := write("vault-case.yaml", sa("billing", "api", "vault.pod-identity.io/role: billing-reader")+sa("evil", "x", "vault.pod-identity.io/role: Billing-Reader"))
	alibabaCase := write("alibaba-case.yaml", sa("billing", "api", "pod-identity.alibabacloud.com/role-name: billing-reader")+sa("evil", "x", "pod-identity.alibabacloud.com/role-name: Billing-Reader"))
	var many strings.Builder
	for i := range 40 {
		many.WriteString(sa("acme", fmt.Sprintf("app-%d", i), "eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/shared"))
	}
	manyOnOneRole := write("many.yaml", many.String())
	openaiIssuer := write("openai-issuer.yaml", sa("acme", "agent", "openai.pod-identity.io/service-account-id: sa1, openai.pod-identity.io/identity-provider-id: idp1, openai.pod-identity.io/audience: '"+testIssuer+"'"))
	apiAudience := write("api-audience.yaml", sa("acme", "reports", "eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/x, eks.amazonaws.com/audience: https://kubernetes.default.svc"))
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"a policy in one file governs the serviceaccounts of another", []string{"trust", "-f", tenantPolicy, "-f", beta, "--issuer", testIssuer},
			`is not allowed by identitypolicy "tenants"`},
		{"a policy that selects by label, with the namespace's labels unknown", []string{"trust", "-f", beta, "--policy", labelPolicy, "--issuer", testIssuer},
			`the labels of namespace "acme" are unknown, and an IdentityPolicy selects namespaces by label`},
		{"a serviceaccount name with quotes, which would end the attribute condition", []string{"trust", "-f", quoted, "--issuer", testIssuer}, `serviceaccount "acme/x\" || true || \"": name`},
		{"a namespace and name of *", []string{"trust", "-f", star, "--issuer", testIssuer}, `namespace "*"`},
		{"a name with a newline, which would end the comment line", []string{"trust", "-f", newline, "--issuer", testIssuer, "-o", "commands"}, `serviceaccount "acme/x\ntouch /tmp/pwned\n#": name`},
		{"one pool provider given two audiences", []string{"trust", "-f", audiences, "--issuer", testIssuer}, `serviceaccounts acme/hostile give it the audience "sts.example.com" and acme/victim gives it`},
		{"two serviceaccounts naming one role that admits one subject", []string{"trust", "-f", vaultShared, "--issuer", testIssuer, "--provider-config", filepath.Join("..", "..", "deploy", "providers", "vault.yaml")},
			`Vault JWT auth role "auth/jwt/role/shared": serviceaccounts acme/a and acme/b both name it, and it admits one ServiceAccount: applying the second would replace the first`},
		{"the same Vault role spelled in another case", []string{"trust", "-f", vaultCase, "--issuer", testIssuer, "--provider-config", filepath.Join("..", "..", "deploy", "providers", "vault.yaml")},
			`serviceaccounts billing/api and evil/x both name it`},
		{"the same RAM role spelled in another case", []string{"trust", "-f", alibabaCase, "--issuer", testIssuer, "--provider-config", filepath.Join("..", "..", "deploy", "providers", "alibaba-rrsa.yaml")},
			`serviceaccounts billing/api and evil/x both name it`},
		{"so many serviceaccounts on one IAM role that its trust policy would pass IAM's limit", []string{"trust", "-f", manyOnOneRole, "--issuer", testIssuer},
			`over IAM's maximum of 4096: give some of them another role`},
		{"an audience the API server accepts", []string{"trust", "-f", apiAudience, "--issuer", testIssuer}, `the token audience "https://kubernetes.default.svc" is one the Kubernetes API server accepts`},
		{"the issuer as an audience", []string{"trust", "-f", issuerAudience, "--issuer", testIssuer}, `is one the Kubernetes API server accepts`},
		{"the issuer as the audience a declarative provider's annotation chooses", []string{"trust", "-f", openaiIssuer, "--issuer", testIssuer, "--provider-config", filepath.Join("..", "..", "deploy", "providers", "openai.yaml")},
			`serviceaccount "acme/agent" (openai): the token audience`},
		{"an EKS cluster ARN with wildcards", []string{"trust", "-f", good, "--eks-cluster", "arn:aws:eks:*:111122223333:cluster/*"}, `expected an EKS cluster ARN`},
		{"a role of another account than the EKS cluster's", []string{"trust", "-f", good, "--eks-cluster", "arn:aws:eks:us-west-2:999999999999:cluster/prod"}, `not the cluster's 999999999999`},
		{"no issuer", []string{"trust", "-f", good}, "--issuer is required"},
		{"an issuer that is not HTTPS", []string{"trust", "-f", good, "--issuer", "http://oidc.example.com"}, `issuer "http://oidc.example.com": expected an https:// URL`},
		{"an invalid identity", []string{"trust", "-f", bad, "--issuer", testIssuer}, `annotation eks.amazonaws.com/role-arn has invalid value "nope"`},
		{"a serviceaccount with no identity", []string{"trust", "-f", plain, "--issuer", testIssuer}, `no identity to trust: none of the serviceaccounts read (team/plain) names an identity`},
		{"an EKS cluster that is not an ARN", []string{"trust", "-f", good, "--eks-cluster", "prod"}, `EKS cluster "prod": expected an EKS cluster ARN`},
		{"an unknown output", []string{"trust", "-f", good, "--issuer", testIssuer, "-o", "xml"}, `invalid argument "xml" for "-o, --output" flag: expected json, yaml or commands`},
		{"an identity a policy refuses", []string{"trust", "-f", good, "--issuer", testIssuer, "--policy", filepath.Join(fixtures, "policy", "isolation-own-aws-token-denied", "input.yaml")},
			`serviceaccount "acme/billing": annotation eks.amazonaws.com/role-arn "arn:aws-cn:iam::444455556666:role/billing" is not allowed by identitypolicy "tenants"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runInjector(tt.args, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
			if len(stdout) > 0 {
				t.Errorf("printed %q before failing: nothing is half-printed", stdout)
			}
		})
	}
}

func TestTrustCheck(t *testing.T) {
	dir := t.TempDir()
	hp := strings.TrimPrefix(testIssuer, "https://")
	fed := `"Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/` + hp + `"},"Action":"sts:AssumeRoleWithWebIdentity"`
	urlEncoded := url.QueryEscape(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,"Condition":{"StringEquals":{"` + hp + `:sub":"system:serviceaccount:acme:reports","` + hp + `:aud":"sts.amazonaws.com"}}}]}`)
	for _, tt := range []struct {
		name, doc string
		want      []string
		fails     bool
	}{
		{"a minimal trust passes", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,"Condition":{"StringEquals":{"` + hp + `:sub":"system:serviceaccount:acme:reports","` + hp + `:aud":"sts.amazonaws.com"}}}]}`,
			[]string{"admits system:serviceaccount:acme:reports"}, false},
		{"a wildcard subject is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,"Condition":{"StringLike":{"` + hp + `:sub":"system:serviceaccount:*:*"},"StringEquals":{"` + hp + `:aud":"sts.amazonaws.com"}}}]}`,
			[]string{`Statement[0]: admits the subjects "system:serviceaccount:*:*" (StringLike): every ServiceAccount they match`}, true},
		{"a missing audience condition is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,"Condition":{"StringEquals":{"` + hp + `:sub":"system:serviceaccount:acme:reports"}}}]}`,
			[]string{"has no condition on " + hp + ":aud"}, true},
		{"no subject condition is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `}]}`,
			[]string{"has no condition on " + hp + ":sub: any ServiceAccount of the cluster"}, true},
		{"another issuer is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/other.example.com"},"Action":["sts:AssumeRoleWithWebIdentity"],"Condition":{"StringEquals":{"other.example.com:sub":"system:serviceaccount:a:b","other.example.com:aud":"sts.amazonaws.com"}}}]}`,
			[]string{`trusts web identities of "arn:aws:iam::111122223333:oidc-provider/other.example.com", not of this cluster's issuer`}, true},
		{"an EKS Pod Identity trust pinned to one serviceaccount passes", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringEquals":{"aws:RequestTag/eks-cluster-arn":"arn:aws:eks:us-west-2:111122223333:cluster/prod","aws:RequestTag/kubernetes-namespace":"acme","aws:RequestTag/kubernetes-service-account":"reports"}}}]}`,
			[]string{"IAM role trust policy (EKS Pod Identity) admits system:serviceaccount:acme:reports"}, false},
		{"an EKS Pod Identity trust without session tag conditions is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}`,
			[]string{"any EKS Pod Identity association in the account may assume the role"}, true},
		{"a RAM trust for this issuer passes", `{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"Federated":["acs:ram::1234567890123456:oidc-provider/ack-rrsa-c01"]},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"oidc:iss":"` + testIssuer + `","oidc:aud":"sts.aliyuncs.com","oidc:sub":"system:serviceaccount:acme:reports"}}}]}`,
			[]string{"RAM role trust policy admits system:serviceaccount:acme:reports"}, false},
		{"a RAM trust with no issuer condition is reported", `{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"Federated":["acs:ram::1234567890123456:oidc-provider/ack-rrsa-c01"]},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"oidc:aud":"sts.aliyuncs.com","oidc:sub":"system:serviceaccount:acme:reports"}}}]}`,
			[]string{"has no condition on oidc:iss"}, true},
		{"an Entra credential for one serviceaccount passes", `{"name":"kubernetes-acme-reports","issuer":"` + testIssuer + `","subject":"system:serviceaccount:acme:reports","audiences":["api://AzureADTokenExchange"]}`,
			[]string{"Entra federated identity credentials admits system:serviceaccount:acme:reports"}, false},
		{"an Entra credential whose issuer has a trailing slash is reported", `[{"name":"slash","issuer":"` + testIssuer + `/","subject":"system:serviceaccount:acme:reports","audiences":["api://AzureADTokenExchange"]}]`,
			[]string{`credential "slash": issuer "` + testIssuer + `/" differs from the cluster's ` + testIssuer + ` only by a trailing slash`}, true},
		{"an Entra credential matching claims by expression is reported", `{"value":[{"name":"flex","issuer":"` + testIssuer + `","subject":"","claimsMatchingExpression":{"value":"claims['sub'] matches 'system:serviceaccount:acme:*'"},"audiences":["api://AzureADTokenExchange"]}]}`,
			[]string{`credential "flex": matches subjects by the expression`}, true},
		{"an Entra credential of another issuer is reported", `{"name":"other","issuer":"https://other.example.com","subject":"system:serviceaccount:acme:reports","audiences":["api://AzureADTokenExchange"]}`,
			[]string{`credential "other": trusts the issuer "https://other.example.com"`}, true},
		{"a Google pool provider whose condition lists subjects passes", "name: projects/1/locations/global/workloadIdentityPools/p/providers/k\noidc:\n  issuerUri: " + testIssuer + "\nattributeMapping:\n  google.subject: assertion.sub\nattributeCondition: assertion.sub in ['system:serviceaccount:acme:reports', 'system:serviceaccount:acme:billing']\n",
			[]string{"Google workload identity pool provider admits system:serviceaccount:acme:billing", "admits system:serviceaccount:acme:reports"}, false},
		{"a Google pool provider with no attribute condition is reported", `{"name":"projects/1/locations/global/workloadIdentityPools/p/providers/k","oidc":{"issuerUri":"` + testIssuer + `"},"attributeMapping":{"google.subject":"assertion.sub"}}`,
			[]string{"has no attributeCondition: every ServiceAccount of the issuer"}, true},
		{"a Google IAM policy granting a principalSet is reported", `{"bindings":[{"role":"roles/iam.workloadIdentityUser","members":["principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/subject/system:serviceaccount:acme:reports","principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/*"]}]}`,
			[]string{"Google IAM policy admits system:serviceaccount:acme:reports", "grants every identity of the set it names"}, true},
		{"a statement that admits anyone beside a minimal one is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,` + `"Condition":{"StringEquals":{"` + hp + `:sub":"system:serviceaccount:acme:reports","` + hp + `:aud":"sts.amazonaws.com"}}` + `},{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}`,
			[]string{`Statement[1]: admits principals other than this cluster's ServiceAccounts ("AWS *")`}, true},
		{"a Principal of * is reported", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRoleWithWebIdentity"}}`,
			[]string{`Statement[0]: admits principals other than this cluster's ServiceAccounts ("* *")`}, true},
		{"an action matched by a wildcard is read as IAM reads it", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + `"Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/` + hp + `"}` + `,"Action":"sts:AssumeRoleWith*"}]}`,
			[]string{"has no condition on " + hp + ":sub"}, true},
		{"an action in another case is read as IAM reads it", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + `"Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/` + hp + `"}` + `,"Action":"STS:AssumeRoleWithWebIdentity"}]}`,
			[]string{"has no condition on " + hp + ":sub"}, true},
		{"NotAction is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + `"Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/` + hp + `"}` + `,"NotAction":"iam:*"}]}`,
			[]string{"uses NotPrincipal or NotAction"}, true},
		{"a subject that is a policy variable is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,"Condition":{"StringEquals":{"` + hp + `:sub":"${` + hp + `:sub}","` + hp + `:aud":"sts.amazonaws.com"}}}]}`,
			[]string{"which is not one ServiceAccount's"}, true},
		{"a subject condition under an operator it does not read is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,"Condition":{"StringEquals":{"` + hp + `:sub":"system:serviceaccount:acme:reports","` + hp + `:aud":"sts.amazonaws.com"},"StringNotEquals":{"` + hp + `:sub":"system:serviceaccount:acme:other"}}}]}`,
			[]string{"with operator StringNotEquals, which this command does not read"}, true},
		{"a Pod Identity trust that anyone may also assume is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com","AWS":"*"},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringEquals":{"aws:RequestTag/eks-cluster-arn":"arn:aws:eks:us-west-2:111122223333:cluster/prod","aws:RequestTag/kubernetes-namespace":"acme","aws:RequestTag/kubernetes-service-account":"reports"}}}]}`,
			[]string{"admits principals other than this cluster's ServiceAccounts"}, true},
		{"a Pod Identity trust pinned to any cluster is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringLike":{"aws:RequestTag/eks-cluster-arn":"*"},"StringEquals":{"aws:RequestTag/kubernetes-namespace":"acme","aws:RequestTag/kubernetes-service-account":"reports"}}}]}`,
			[]string{"does not pin the cluster"}, true},
		{"a RAM trust of a second issuer is reported", `{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"Federated":["acs:ram::1234567890123456:oidc-provider/ack-rrsa-c01"]},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"oidc:iss":["` + testIssuer + `","https://other.example.com"],"oidc:aud":"sts.aliyuncs.com","oidc:sub":"system:serviceaccount:acme:reports"}}}]}`,
			[]string{`also trusts the issuer(s) "https://other.example.com"`}, true},
		{"a RAM statement for RAM principals is reported", `{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":["acs:ram::*:root"]},"Action":"sts:AssumeRole"}]}`,
			[]string{"admits principals other than this cluster's ServiceAccounts"}, true},
		{"a Google condition whose list holds assertion.sub itself is reported", "name: projects/1/locations/global/workloadIdentityPools/p/providers/k\noidc:\n  issuerUri: " + testIssuer + "\nattributeMapping:\n  google.subject: assertion.sub\nattributeCondition: 'assertion.sub in [\"system:serviceaccount:acme:reports\", assertion.sub]'\n",
			[]string{"is not a list of subjects this command can read"}, true},
		{"Google members that are anyone, a domain or a set are reported", `{"bindings":[{"role":"roles/iam.workloadIdentityUser","members":["allUsers","domain:example.com","principalSet://iam.googleapis.com/locations/global/workforcePools/w/*"]}]}`,
			[]string{"member allUsers grants the role to anyone", `member "domain:example.com" may also act as the service account`, "grants every identity of the set it names"}, true},
		{"a get-role document URL-encoded, as the IAM API returns it, is read", `{"Role":{"Arn":"arn:aws:iam::111122223333:role/reports","AssumeRolePolicyDocument":"` + urlEncoded + `"}}`,
			[]string{"IAM role trust policy admits system:serviceaccount:acme:reports"}, false},
		{"a wildcard audience is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,"Condition":{"StringEquals":{"` + hp + `:sub":"system:serviceaccount:acme:reports"},"StringLike":{"` + hp + `:aud":"*"}}}]}`,
			[]string{`admits the audiences "*" (StringLike)`}, true},
		{"an API server audience is reported", `{"name":"k","issuer":"` + testIssuer + `","subject":"system:serviceaccount:acme:reports","audiences":["https://kubernetes.default.svc"]}`,
			[]string{"which the Kubernetes API server accepts"}, true},
		{"the issuer as an audience is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,"Condition":{"StringEquals":{"` + hp + `:sub":"system:serviceaccount:acme:reports","` + hp + `:aud":"` + testIssuer + `"}}}]}`,
			[]string{"which the Kubernetes API server accepts"}, true},
		{"a Graph page with more to read is reported", `{"value":[{"name":"k","issuer":"` + testIssuer + `","subject":"system:serviceaccount:acme:reports","audiences":["api://AzureADTokenExchange"]}],"@odata.nextLink":"https://graph.microsoft.com/next"}`,
			[]string{"the Graph API page has more credentials"}, true},
		{"Google members of several pools and other roles are reported", `{"bindings":[{"role":"roles/iam.workloadIdentityUser","members":["principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/subject/system:serviceaccount:acme:reports","principal://iam.googleapis.com/projects/2/locations/global/workloadIdentityPools/other/subject/system:serviceaccount:acme:reports"]},{"role":"projects/acme/roles/tokenMinter","members":["group:devs@example.com"]}]}`,
			[]string{"grants principals of several workload identity pools", `member "group:devs@example.com" holds a role on the service account`}, true},
		{"a document that admits nobody says so", `{"bindings":[]}`, []string{"Google IAM policy admits no ServiceAccount"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".json")
			if err := os.WriteFile(f, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, _, err := runInjector([]string{"trust", "check", "--issuer", testIssuer, f}, nil)
			if (err != nil) != tt.fails {
				t.Errorf("error %v, want failure %t", err, tt.fails)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(stdout), w) {
					t.Errorf("output %q lacks %q", stdout, w)
				}
			}
		})
	}
	t.Run("a serviceaccount a policy refuses the role is reported", func(t *testing.T) {
		role := filepath.Join(dir, "get-role.json")
		_ = os.WriteFile(role, []byte(`{"Role":{"Arn":"arn:aws:iam::111122223333:role/billing","AssumeRolePolicyDocument":{"Version":"2012-10-17","Statement":[{"Effect":"Allow",`+fed+`,"Condition":{"StringEquals":{"`+hp+`:sub":"system:serviceaccount:acme:reports","`+hp+`:aud":"sts.amazonaws.com"}}}]}}}`), 0o600)
		pol := filepath.Join(dir, "policy.yaml")
		_ = os.WriteFile(pol, []byte("apiVersion: pod-identity.io/v1alpha1\nkind: IdentityPolicy\nmetadata:\n  name: acme-roles\nspec:\n  aws:\n    roleARNs: ['arn:aws:iam::111122223333:role/{namespace}-*']\n"), 0o600)
		stdout, _, err := runInjector([]string{"trust", "check", "--issuer", testIssuer, "--policy", pol, role}, nil)
		if err == nil || !strings.Contains(string(stdout), `identitypolicy "acme-roles"`) || !strings.Contains(string(stdout), "arn:aws:iam::111122223333:role/billing") {
			t.Errorf("error %v, output %s: want the policy's refusal of the role", err, stdout)
		}
	})
	for _, tt := range []struct{ name, doc, want string }{
		{"a key given twice is refused", `{"Version":"2012-10-17","Statement":[],"Statement":[{"Effect":"Allow"}]}`, `the key "Statement" is given twice in one object`},
		{"several YAML documents are refused", "bindings: []\n---\nbindings: []\n", "more than one YAML document"},
		{"a key given again in another case is refused", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Condition":{"StringLike":{}},"condition":{}}]}`, `the key "condition" is given twice in one object`},
		{"a key given twice in a get-role document is refused", `{"Role":{"Arn":"arn:aws:iam::111122223333:role/r","AssumeRolePolicyDocument":"` + url.QueryEscape(`{"Statement":[{"Condition":{"StringEquals":{},"StringEquals":{}}}]}`) + `"}}`, `Role.AssumeRolePolicyDocument: the key "StringEquals" is given twice`},
		{"a YAML key given twice is refused", "attributeCondition: 'true'\noidc: {issuerUri: " + testIssuer + "}\nattributeCondition: 'assertion.sub == \"x\"'\n", "a key given twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".txt")
			_ = os.WriteFile(f, []byte(tt.doc), 0o600)
			_, _, err := runInjector([]string{"trust", "check", "--issuer", testIssuer, f}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("malformed JSON is a clear error", func(t *testing.T) {
		f := filepath.Join(dir, "bad.json")
		_ = os.WriteFile(f, []byte(`{"Statement":`), 0o600)
		_, _, err := runInjector([]string{"trust", "check", "--issuer", testIssuer, f}, nil)
		if err == nil || !strings.Contains(err.Error(), "bad.json: malformed JSON at byte 13") {
			t.Errorf("error %v", err)
		}
	})
}
