# tflint with its bundled terraform ruleset (recommended preset); no provider plugins
# are downloaded, so the aws ruleset is not enabled.
plugin "terraform" {
  enabled = true
  preset  = "all"
}
