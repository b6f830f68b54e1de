package main

import "github.com/spf13/pflag"

func addInvalidIdentityFlag(fs *pflag.FlagSet, v *string) {
	fs.StringVar(v, "invalid-identity", "deny", "what an invalid identity annotation does: deny the pod, or warn and admit it without that provider's injection")
}
