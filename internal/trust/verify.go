package trust

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"golang.org/x/oauth2/google/externalaccount"
	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/pkg/providers"
)

// Exchange is one token exchange `injector verify` makes for a
// ServiceAccount: its token, for Audience, traded for the identity's
// credentials with the cloud's own SDK, as its pods would.
type Exchange struct {
	// Provider names the provider; Identity the role, client ID or
	// provider the exchange is for.
	Provider, Identity string
	// Audience is the audience of the token to request.
	Audience string
	// Skip, when set, says why the exchange cannot be made from here.
	Skip string
	run  func(ctx context.Context, token string) (string, error)
}

// Run makes the exchange with token and says what the cloud granted, or
// returns the cloud's refusal.
func (e Exchange) Run(ctx context.Context, token string) (string, error) {
	return e.run(ctx, token)
}

// VerifyOptions are what the exchanges need besides the injections.
type VerifyOptions struct {
	// AWSRegion is the STS region when the injection names none.
	AWSRegion string
}

// Exchanges returns the exchanges that check the cloud half of the
// injections of sa: the AWS SDK's web identity provider (sts
// AssumeRoleWithWebIdentity), azidentity's client assertion credential
// (Entra's token endpoint), and Google's external account library (STS,
// then impersonation when configured), each configured from what the
// injection hands the pod.
func Exchanges(sa *corev1.ServiceAccount, injections []*providers.Injection, o VerifyOptions) []Exchange {
	var out []Exchange
	for _, inj := range injections {
		env := map[string]string{}
		for _, g := range inj.Env {
			for _, v := range g.Vars {
				env[v.Name] = v.Value
			}
		}
		aud := audience(inj)
		switch inj.Provider {
		case "aws":
			arn := env["AWS_ROLE_ARN"]
			if arn == "" {
				out = append(out, Exchange{Provider: "aws", Identity: "EKS Pod Identity", Skip: "EKS Pod Identity credentials come from the node's agent and the EKS Auth API, which only pods reach"})
				continue
			}
			region := env["AWS_REGION"]
			if region == "" {
				region = o.AWSRegion
			}
			session := "injector-verify-" + sa.Namespace + "-" + sa.Name
			if len(session) > 64 { // IAM's limit on a role session name
				session = session[:64]
			}
			out = append(out, Exchange{Provider: "aws", Identity: arn, Audience: aud, run: func(ctx context.Context, token string) (string, error) {
				return assumeRole(ctx, region, arn, session, token)
			}})
		case "azure":
			clientID, tenant := env["AZURE_CLIENT_ID"], env["AZURE_TENANT_ID"]
			if clientID == "" || tenant == "" {
				out = append(out, Exchange{Provider: "azure", Identity: clientID, Skip: "no client ID or tenant ID to exchange for: the serviceaccount or the webhook names none"})
				continue
			}
			authority := env["AZURE_AUTHORITY_HOST"]
			out = append(out, Exchange{Provider: "azure", Identity: clientID, Audience: aud, run: func(ctx context.Context, token string) (string, error) {
				return entraToken(ctx, authority, tenant, clientID, token)
			}})
		case "gcp":
			conf, err := googleConfig(inj)
			if err != nil {
				out = append(out, Exchange{Provider: "gcp", Skip: err.Error()})
				continue
			}
			id := strings.TrimPrefix(conf.Audience, "//iam.googleapis.com/")
			if conf.ServiceAccountImpersonationURL != "" {
				id = conf.ServiceAccountImpersonationURL[strings.LastIndex(conf.ServiceAccountImpersonationURL, "/")+1:]
				id = strings.TrimSuffix(id, ":generateAccessToken")
			}
			out = append(out, Exchange{Provider: "gcp", Identity: id, Audience: aud, run: func(ctx context.Context, token string) (string, error) {
				return googleToken(ctx, *conf, token)
			}})
		default:
			if len(inj.Identities) > 0 {
				out = append(out, Exchange{Provider: inj.Provider, Identity: inj.Identities[0].Value,
					Skip: "no exchange is known for a declarative provider: check its trust with its SDK from a pod"})
			}
		}
	}
	return out
}

func assumeRole(ctx context.Context, region, arn, session, token string) (string, error) {
	// The SDK's own configuration: AWS_ENDPOINT_URL_STS and the shared
	// config's endpoint settings apply, as in a pod.
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region), config.WithCredentialsProvider(awssdk.AnonymousCredentials{}))
	if err != nil {
		return "", err
	}
	p := stscreds.NewWebIdentityRoleProvider(sts.NewFromConfig(cfg), arn, staticToken(token), func(o *stscreds.WebIdentityRoleOptions) {
		o.RoleSessionName = session
	})
	creds, err := p.Retrieve(ctx)
	if err != nil {
		return "", err
	}
	return "temporary credentials " + creds.AccessKeyID, nil
}

// staticToken is a token the SDKs read as if from the pod's file.
type staticToken string

// GetIdentityToken implements stscreds.IdentityTokenRetriever.
func (t staticToken) GetIdentityToken() ([]byte, error) { return []byte(t), nil }

// SubjectToken implements externalaccount.SubjectTokenSupplier.
func (t staticToken) SubjectToken(context.Context, externalaccount.SupplierOptions) (string, error) {
	return string(t), nil
}

// knownAuthorities are the Entra hosts MSAL knows; for any other it would
// ask login.microsoftonline.com about the host first.
var knownAuthorities = []string{"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn"}

func entraToken(ctx context.Context, authority, tenant, clientID, token string) (string, error) {
	opts := &azidentity.ClientAssertionCredentialOptions{}
	if authority != "" {
		opts.ClientOptions = azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: authority}}
		if u, err := url.Parse(authority); err == nil {
			opts.DisableInstanceDiscovery = true
			for _, h := range knownAuthorities {
				if u.Host == h {
					opts.DisableInstanceDiscovery = false
				}
			}
		}
	}
	cred, err := azidentity.NewClientAssertionCredential(tenant, clientID, func(context.Context) (string, error) { return token, nil }, opts)
	if err != nil {
		return "", err
	}
	// Any resource will do: Entra checks the federated credential first.
	if _, err := cred.GetToken(ctx, azpolicy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}}); err != nil {
		return "", err
	}
	return "an access token for application " + clientID, nil
}

// googleConfig reads the credential configuration the injection gives
// the pod.
func googleConfig(inj *providers.Injection) (*externalaccount.Config, error) {
	for _, v := range inj.Annotations {
		var c struct {
			Type                           string `json:"type"`
			Audience                       string `json:"audience"`
			SubjectTokenType               string `json:"subject_token_type"`
			TokenURL                       string `json:"token_url"`
			ServiceAccountImpersonationURL string `json:"service_account_impersonation_url"`
			UniverseDomain                 string `json:"universe_domain"`
		}
		if json.Unmarshal([]byte(v), &c) != nil || c.Type != "external_account" {
			continue
		}
		return &externalaccount.Config{Audience: c.Audience, SubjectTokenType: c.SubjectTokenType, TokenURL: c.TokenURL,
			ServiceAccountImpersonationURL: c.ServiceAccountImpersonationURL, UniverseDomain: c.UniverseDomain,
			Scopes: []string{"https://www.googleapis.com/auth/cloud-platform"}}, nil
	}
	return nil, fmt.Errorf("the injection carries no external account configuration")
}

func googleToken(ctx context.Context, conf externalaccount.Config, token string) (string, error) {
	conf.SubjectTokenSupplier = staticToken(token)
	ts, err := externalaccount.NewTokenSource(ctx, conf)
	if err != nil {
		return "", err
	}
	if _, err := ts.Token(); err != nil {
		return "", err
	}
	if conf.ServiceAccountImpersonationURL != "" {
		return "an access token for the Google service account", nil
	}
	return "a federated access token", nil
}
