"""The Graph v1.0 property names the emulator knows, so `$select` behaves like Graph's.

Graph answers `$select=department` with `"department": null` for a user who has none, and
answers `$select=notAField` with 400. To do the same without modelling every property, this
module lists the structural (non-navigation) properties of each entity type with the value
Graph shows when the property is unset: `None`, `[]` for collections, or `False`/`0` for the
few non-nullable scalars.

Source: Microsoft's OpenAPI description of Graph v1.0 (msgraph-sdk-powershell
`openApiDocs/v1.0`, commit 297822af, 2024-10-01), via /work/shared/graph-openapi. The
`device` and `orgContact` lists are shorter, from the v1.0 resource pages; the subset does not
describe those types.
"""

from __future__ import annotations

from typing import Any


def _table(
    nullable: str = "", collections: str = "", false: str = "", zero: str = ""
) -> dict[str, Any]:
    table: dict[str, Any] = dict.fromkeys(nullable.split())
    table.update({name: () for name in collections.split()})  # () -> [] when rendered
    table.update(dict.fromkeys(false.split(), False))
    table.update(dict.fromkeys(zero.split(), 0))
    return table


USER = _table(
    nullable="""
    aboutMe accountEnabled ageGroup authorizationInfo birthday city companyName
    consentProvidedForMinor country createdDateTime creationType customSecurityAttributes
    deletedDateTime department displayName employeeHireDate employeeId employeeLeaveDateTime
    employeeOrgData employeeType externalUserState externalUserStateChangeDateTime faxNumber
    givenName hireDate id isManagementRestricted isResourceAccount jobTitle
    lastPasswordChangeDateTime legalAgeGroupClassification mail mailNickname mailboxSettings
    mobilePhone mySite officeLocation onPremisesDistinguishedName onPremisesDomainName
    onPremisesExtensionAttributes onPremisesImmutableId onPremisesLastSyncDateTime
    onPremisesSamAccountName onPremisesSecurityIdentifier onPremisesSyncEnabled
    onPremisesUserPrincipalName passwordPolicies passwordProfile postalCode preferredDataLocation
    preferredLanguage preferredName print securityIdentifier showInAddressList signInActivity
    signInSessionsValidFromDateTime state streetAddress surname usageLocation userPrincipalName
    userType
    """,
    collections="""
    assignedLicenses assignedPlans businessPhones identities imAddresses interests
    licenseAssignmentStates onPremisesProvisioningErrors otherMails pastProjects provisionedPlans
    proxyAddresses responsibilities schools serviceProvisioningErrors skills
    """,
    zero="deviceEnrollmentLimit",
)

GROUP = _table(
    nullable="""
    allowExternalSenders autoSubscribeNewMembers classification createdDateTime deletedDateTime
    description displayName expirationDateTime hasMembersWithLicenseErrors hideFromAddressLists
    hideFromOutlookClients id isArchived isAssignableToRole isManagementRestricted
    isSubscribedByMail licenseProcessingState mail mailEnabled mailNickname membershipRule
    membershipRuleProcessingState onPremisesDomainName onPremisesLastSyncDateTime
    onPremisesNetBiosName onPremisesSamAccountName onPremisesSecurityIdentifier
    onPremisesSyncEnabled preferredDataLocation preferredLanguage renewedDateTime securityEnabled
    securityIdentifier theme uniqueName unseenCount visibility
    """,
    collections="""
    assignedLabels assignedLicenses groupTypes onPremisesProvisioningErrors proxyAddresses
    serviceProvisioningErrors
    """,
)

SERVICE_PRINCIPAL = _table(
    nullable="""
    accountEnabled appDescription appDisplayName appId appOwnerOrganizationId
    applicationTemplateId customSecurityAttributes deletedDateTime description
    disabledByMicrosoftStatus displayName homepage id info loginUrl logoutUrl notes
    preferredSingleSignOnMode preferredTokenSigningKeyThumbprint samlSingleSignOnSettings
    servicePrincipalType signInAudience tokenEncryptionKeyId verifiedPublisher
    """,
    collections="""
    addIns alternativeNames appRoles keyCredentials notificationEmailAddresses
    oauth2PermissionScopes passwordCredentials replyUrls resourceSpecificApplicationPermissions
    servicePrincipalNames tags
    """,
    false="appRoleAssignmentRequired",
)

ORGANIZATION = _table(
    nullable="""
    city country countryLetterCode createdDateTime defaultUsageLocation deletedDateTime
    displayName id mobileDeviceManagementAuthority onPremisesLastSyncDateTime
    onPremisesSyncEnabled partnerTenantType postalCode preferredLanguage privacyProfile state
    street tenantType
    """,
    collections="""
    assignedPlans businessPhones marketingNotificationEmails provisionedPlans
    securityComplianceNotificationMails securityComplianceNotificationPhones
    technicalNotificationMails verifiedDomains
    """,
)

APP_ROLE_ASSIGNMENT = _table(
    nullable="""
    appRoleId createdDateTime deletedDateTime id principalDisplayName principalId principalType
    resourceDisplayName resourceId
    """,
)

DEVICE = _table(
    nullable="""
    accountEnabled approximateLastSignInDateTime complianceExpirationDateTime deletedDateTime
    deviceId deviceMetadata deviceVersion displayName id isCompliant isManaged mdmAppId
    onPremisesLastSyncDateTime onPremisesSyncEnabled operatingSystem operatingSystemVersion
    profileType registrationDateTime trustType
    """,
    collections="alternativeSecurityIds physicalIds systemLabels",
)

ORG_CONTACT = _table(
    nullable="""
    companyName deletedDateTime department displayName givenName id jobTitle mail mailNickname
    onPremisesLastSyncDateTime onPremisesSyncEnabled surname
    """,
    collections="""
    addresses onPremisesProvisioningErrors phones proxyAddresses serviceProvisioningErrors
    """,
)

DIRECTORY_OBJECT = _table(nullable="id deletedDateTime")

# Entity type (as in "#microsoft.graph.user") -> its property table.
BY_TYPE: dict[str, dict[str, Any]] = {
    "user": USER,
    "group": GROUP,
    "servicePrincipal": SERVICE_PRINCIPAL,
    "organization": ORGANIZATION,
    "appRoleAssignment": APP_ROLE_ASSIGNMENT,
    "device": DEVICE,
    "orgContact": ORG_CONTACT,
    "directoryObject": DIRECTORY_OBJECT,
}

# Graph accepts a property of any derived type in $select on a directoryObject collection.
DIRECTORY_OBJECT_SELECTABLE = frozenset().union(
    USER, GROUP, SERVICE_PRINCIPAL, DEVICE, ORG_CONTACT, DIRECTORY_OBJECT
)

# "Returned by default" in the v1.0 resource pages (user: the documented default set).
USER_DEFAULT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
GROUP_DEFAULT = (
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "visibility",
    "onPremisesProvisioningErrors",
    "serviceProvisioningErrors",
)
SERVICE_PRINCIPAL_DEFAULT = (
    "id",
    "deletedDateTime",
    "accountEnabled",
    "alternativeNames",
    "appDisplayName",
    "appDescription",
    "appId",
    "applicationTemplateId",
    "appOwnerOrganizationId",
    "appRoleAssignmentRequired",
    "description",
    "disabledByMicrosoftStatus",
    "displayName",
    "homepage",
    "loginUrl",
    "logoutUrl",
    "notes",
    "notificationEmailAddresses",
    "preferredSingleSignOnMode",
    "preferredTokenSigningKeyThumbprint",
    "replyUrls",
    "servicePrincipalNames",
    "servicePrincipalType",
    "signInAudience",
    "tags",
    "tokenEncryptionKeyId",
    "appRoles",
    "info",
    "keyCredentials",
    "oauth2PermissionScopes",
    "passwordCredentials",
)
ORGANIZATION_DEFAULT = (
    "id",
    "deletedDateTime",
    "businessPhones",
    "city",
    "country",
    "countryLetterCode",
    "createdDateTime",
    "defaultUsageLocation",
    "displayName",
    "marketingNotificationEmails",
    "onPremisesLastSyncDateTime",
    "onPremisesSyncEnabled",
    "postalCode",
    "preferredLanguage",
    "securityComplianceNotificationMails",
    "securityComplianceNotificationPhones",
    "state",
    "street",
    "technicalNotificationMails",
    "tenantType",
    "assignedPlans",
    "provisionedPlans",
    "verifiedDomains",
)
APP_ROLE_ASSIGNMENT_DEFAULT = (
    "id",
    "deletedDateTime",
    "appRoleId",
    "createdDateTime",
    "principalDisplayName",
    "principalId",
    "principalType",
    "resourceDisplayName",
    "resourceId",
)
DEVICE_DEFAULT = (
    "id",
    "deletedDateTime",
    "accountEnabled",
    "deviceId",
    "displayName",
    "operatingSystem",
    "operatingSystemVersion",
    "trustType",
)
ORG_CONTACT_DEFAULT = ("id", "deletedDateTime", "displayName", "givenName", "surname", "mail")

DEFAULTS: dict[str, tuple[str, ...]] = {
    "user": USER_DEFAULT,
    "group": GROUP_DEFAULT,
    "servicePrincipal": SERVICE_PRINCIPAL_DEFAULT,
    "organization": ORGANIZATION_DEFAULT,
    "appRoleAssignment": APP_ROLE_ASSIGNMENT_DEFAULT,
    "device": DEVICE_DEFAULT,
    "orgContact": ORG_CONTACT_DEFAULT,
    "directoryObject": ("id", "deletedDateTime"),
}
