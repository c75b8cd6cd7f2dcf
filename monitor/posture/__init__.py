"""IAM posture: role inventory, trust policies, Access Analyzer, service last accessed."""
