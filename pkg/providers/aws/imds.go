package aws

import (
	"context"
	"fmt"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// imdsTimeout bounds the start-up question to the instance metadata service.
const imdsTimeout = 5 * time.Second

// instanceAccount asks the EC2 instance metadata service for the account
// and region of the node the injector runs on, through aws-sdk-go-v2, so
// that its settings apply (AWS_EC2_METADATA_SERVICE_ENDPOINT,
// AWS_EC2_METADATA_DISABLED, IMDSv2 tokens).
func instanceAccount(ctx context.Context) (account, region string, err error) {
	ctx, cancel := context.WithTimeout(ctx, imdsTimeout)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return "", "", fmt.Errorf("load the AWS SDK configuration: %w", err)
	}
	doc, err := imds.NewFromConfig(cfg).GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return "", "", err
	}
	if !accountID.MatchString(doc.AccountID) {
		return "", "", fmt.Errorf("the instance identity document names account %q: expected 12 digits", doc.AccountID)
	}
	return doc.AccountID, doc.Region, nil
}

// resolveAccount fills the account of composed role ARNs from the instance
// metadata service when --aws-compose-role-arn is set without
// --aws-account-id, and the partition from the instance's region when
// neither --aws-partition nor --aws-default-region gave one.
func (c *Config) resolveAccount(ctx context.Context, ask func(context.Context) (string, string, error)) error {
	if !c.ComposeRoleARN || c.AccountID != "" {
		return nil
	}
	account, region, err := ask(ctx)
	if err != nil {
		return fmt.Errorf("--aws-compose-role-arn without --aws-account-id: the account comes from the EC2 instance metadata service, which could not tell it within %s (%w); set --aws-account-id", imdsTimeout, err)
	}
	c.AccountID = account
	if c.Partition == "" && c.DefaultRegion == "" {
		c.Partition = PartitionForRegion(region)
	}
	return nil
}
