package deploy_test

import (
	"bufio"
	"bytes"

	policyv1 "k8s.io/api/policy/v1"
)

type policyPDB = policyv1.PodDisruptionBudget

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
