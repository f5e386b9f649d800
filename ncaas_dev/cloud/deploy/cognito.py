"""The web client's sign-in on AWS: a Cognito user pool in the analysis's stack.

One app client (user name + password through InitiateAuth, no client secret: the web client
calls it from its server) and one Cognito group per blueprint group, holding that group's
users. `ncaas-dev web --cloud --cognito-client-id ...` maps ``cognito:groups`` to the analysis
group. Users are created without an invitation message; the operator sets each password:
``aws cognito-idp admin-set-user-password --user-pool-id ... --username ... --password ...
--permanent``.
"""

from __future__ import annotations

from typing import Any

from ...blueprint import Blueprint
from .names import logical_id

Doc = dict[str, Any]
USER_POOL = "WebUserPool"
USER_POOL_CLIENT = "WebUserPoolClient"


def cognito_resources(blueprint: Blueprint) -> tuple[Doc, Doc]:
    """The template's Cognito resources and outputs for ``blueprint``."""
    pool = {"Ref": USER_POOL}
    resources: Doc = {
        USER_POOL: {
            "Type": "AWS::Cognito::UserPool",
            # A user pool holds people's accounts: it outlives a deleted stack.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "UserPoolName": f"ncaas-{blueprint.analysis}",
                "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
                "Policies": {
                    "PasswordPolicy": {
                        "MinimumLength": 12,
                        "RequireLowercase": True,
                        "RequireUppercase": True,
                        "RequireNumbers": True,
                        "RequireSymbols": False,
                    }
                },
            },
        },
        USER_POOL_CLIENT: {
            "Type": "AWS::Cognito::UserPoolClient",
            "Properties": {
                "ClientName": "ncaas-web",
                "UserPoolId": pool,
                "GenerateSecret": False,
                "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
                "PreventUserExistenceErrors": "ENABLED",
            },
        },
    }
    for group in blueprint.groups:
        group_id = logical_id("WebGroup", group.name)
        resources[group_id] = {
            "Type": "AWS::Cognito::UserPoolGroup",
            "Properties": {
                "GroupName": group.name,
                "Description": f"{blueprint.analysis} users of group {group.name}",
                "UserPoolId": pool,
            },
        }
        for user in group.users:
            user_id = logical_id("WebUser", group.name, user)
            resources[user_id] = {
                "Type": "AWS::Cognito::UserPoolUser",
                "Properties": {"Username": user, "UserPoolId": pool, "MessageAction": "SUPPRESS"},
            }
            resources[logical_id("WebMember", group.name, user)] = {
                "Type": "AWS::Cognito::UserPoolUserToGroupAttachment",
                "Properties": {
                    "GroupName": {"Ref": group_id},
                    "Username": {"Ref": user_id},
                    "UserPoolId": pool,
                },
            }
    outputs: Doc = {
        "CognitoUserPoolId": {"Value": pool},
        "CognitoClientId": {"Value": {"Ref": USER_POOL_CLIENT}},
    }
    return resources, outputs
