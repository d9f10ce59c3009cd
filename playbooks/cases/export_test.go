package cases

// RuleError reports a finding that says its rule could not be evaluated.
var RuleError = ruleError
