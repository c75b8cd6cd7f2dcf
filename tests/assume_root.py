"""AssumeRoot (centralized root access) CloudTrail records for tests.

The successful record follows the example in the IAM User Guide, "Track privileged tasks in AWS
CloudTrail" (https://docs.aws.amazon.com/IAM/latest/UserGuide/cloudtrail-track-privileged-tasks.html):
userIdentity of the management-account role session (its sessionContext carries
`"assumedRoot": "true"`), `requestParameters.targetPrincipal` (the member account id) and
`requestParameters.taskPolicyArn.arn`, `responseElements.credentials` with a CloudTrail-style
`expiration`. That example leaves out the fields every record has (eventID, requestID,
recipientAccountId, eventType, ...), added here as CloudTrail writes them for any STS call;
`durationSeconds` is the AssumeRoot API's DurationSeconds parameter (at most 900), sent only when
the caller sets it.

AWS documents no refused AssumeRoot record. The refusal below has the shape of every refused STS
call (errorCode, errorMessage, no request parameters or response) and the IAM denial message
naming the target account's root as the resource, as it is quoted for sts:AssumeRoot in public
code.
"""

from __future__ import annotations

from typing import Any

MANAGEMENT = "111111111111"
MEMBER = "222222222222"
CALLER_ARN = f"arn:aws:sts::{MANAGEMENT}:assumed-role/JohnDoe/JohnRole1"
CALLER_ROLE = f"arn:aws:iam::{MANAGEMENT}:role/JohnDoe"
TASK_POLICY = "arn:aws:iam::aws:policy/root-task/S3UnlockBucketPolicy"
ROOT_ARN = f"arn:aws:iam::{MEMBER}:root"


def _identity() -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": "AIDACKCEVSQ6C2EXAMPLE:JohnRole1",
        "arn": CALLER_ARN,
        "accountId": MANAGEMENT,
        "accessKeyId": "ASIAIOSFODNN7EXAMPLE",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": "AIDACKCEVSQ6C2EXAMPLE", "arn": CALLER_ROLE,
                              "accountId": MANAGEMENT, "userName": "Admin2"},
            "webIdFederationData": {},
            "attributes": {"creationDate": "2024-10-25T20:45:28Z", "mfaAuthenticated": "false"},
            "assumedRoot": "true",
        },
    }


def assume_root_record(event_id: str = "a1b2c3d4-0001-4000-8000-assumeroot01", *,
                       time: str = "2024-10-25T20:52:11Z", target: str = MEMBER,
                       task_policy: str = TASK_POLICY, duration: int | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"targetPrincipal": target, "taskPolicyArn": {"arn": task_policy}}
    if duration is not None:
        request["durationSeconds"] = duration
    return {
        "eventVersion": "1.08",
        "userIdentity": _identity(),
        "eventTime": time,
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRoot",
        "awsRegion": "us-west-2",
        "sourceIPAddress": "192.0.2.1",
        "userAgent": "aws-cli/2.22.0",
        "requestParameters": request,
        "responseElements": {
            "credentials": {
                "accessKeyId": "ASIAROOTSESSIONEXAMPLE",
                "sessionToken": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "expiration": "Oct 25, 2024, 9:07:11 PM",
            }
        },
        "requestID": "b2c3d4e5-0001-4000-8000-requestid001",
        "eventID": event_id,
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": MANAGEMENT,
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": "sts.us-west-2.amazonaws.com"},
    }


def refused_assume_root_record(event_id: str = "a1b2c3d4-0002-4000-8000-assumeroot02", *,
                               time: str = "2024-10-25T20:50:02Z") -> dict[str, Any]:
    rec = assume_root_record(event_id, time=time)
    rec.update(
        errorCode="AccessDenied",
        errorMessage=f"User: {CALLER_ARN} is not authorized to perform: sts:AssumeRoot on resource: {ROOT_ARN}",
        requestParameters=None,
        responseElements=None,
    )
    return rec
