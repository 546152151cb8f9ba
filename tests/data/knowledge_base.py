"""A small Orbsurv knowledge base and a labelled question set for retrieval-quality tests.

Each question names the resource that answers it best. The texts describe the product as this
service implements it."""

from __future__ import annotations

from typing import Any

RESOURCES: list[dict[str, Any]] = [
    {
        "slug": "create-an-account",
        "title": "Create an account",
        "type": "knowledge",
        "description": "Register with an email address and a password to use the portal.",
        "body": (
            "Open the sign-up page and enter your email address and a password. Your name, "
            "organization and a username are optional and can be added later.\n\n"
            "After registering you are signed in at once. A verification email is sent to the "
            "address you gave; some deployments require the address to be verified before you "
            "can sign in."
        ),
    },
    {
        "slug": "verify-your-email",
        "title": "Verify your email address",
        "type": "knowledge",
        "description": "Confirm that the address on your account is yours.",
        "body": (
            "We send a verification link when you register. Open the link within 24 hours to "
            "confirm the address. Each link works once.\n\n"
            "Did not receive the verification mail? Ask for a new link from the sign-in page "
            "with 'Resend verification'. Check your spam folder too."
        ),
    },
    {
        "slug": "sign-in",
        "title": "Sign in to the portal",
        "type": "knowledge",
        "description": "Log in with your email or username and your password.",
        "body": (
            "Use your email address or your username together with your password to log in. "
            "Your session stays open for 30 days on that browser unless you log out.\n\n"
            "Signing in from a new browser opens a new session; you can see all of them under "
            "Sessions."
        ),
    },
    {
        "slug": "reset-your-password",
        "title": "Reset a forgotten password",
        "type": "support",
        "description": "Get a reset link by email when you forgot your password.",
        "body": (
            "Forgot your password? Choose 'Forgot password' on the sign-in page and enter your "
            "email. A reset link arrives within minutes and is valid for 30 minutes.\n\n"
            "Choosing a new password signs out every session of your account. The reset link "
            "can be used only once."
        ),
    },
    {
        "slug": "change-your-password",
        "title": "Change your password",
        "type": "knowledge",
        "description": "Set a new password while signed in.",
        "body": (
            "Under Account, open Password, type your current password and the new one. Other "
            "sessions are signed out; the one you are using stays open.\n\n"
            "Passwords are 8 to 128 characters. Any characters are allowed; very common "
            "passwords are refused."
        ),
    },
    {
        "slug": "password-rules",
        "title": "Password requirements",
        "type": "knowledge",
        "description": "What makes a password acceptable.",
        "body": (
            "A password must be between 8 and 128 characters long. There are no composition "
            "rules: you do not need digits or symbols. Long passphrases are welcome.\n\n"
            "Passwords found in lists of commonly used passwords are rejected. We store only "
            "an Argon2id hash, never the password itself."
        ),
    },
    {
        "slug": "two-factor-totp",
        "title": "Two-factor authentication with TOTP",
        "type": "knowledge",
        "description": "Protect your account with one-time codes from an authenticator app.",
        "body": (
            "Enable two-factor authentication under Account > Security. Scan the QR code with "
            "an authenticator app such as Google Authenticator, 1Password or Aegis, then type "
            "the six-digit code to confirm.\n\n"
            "Codes change every 30 seconds (TOTP, RFC 6238) and each code works once."
        ),
    },
    {
        "slug": "lost-authenticator",
        "title": "Lost your authenticator device",
        "type": "support",
        "description": "What to do when your phone with the one-time codes is gone.",
        "body": (
            "If your phone with the authenticator app was lost, stolen or reset, you cannot "
            "produce one-time codes. Contact support from the address on your account; after "
            "checking your identity we disable two-factor so you can enrol a new device.\n\n"
            "Then enrol the replacement phone right away."
        ),
    },
    {
        "slug": "account-lockout",
        "title": "Locked out after failed sign-ins",
        "type": "support",
        "description": "Why sign-in is blocked for a while after wrong passwords.",
        "body": (
            "After 5 failed sign-in attempts within 15 minutes the account is locked for 15 "
            "minutes and sign-in answers 'too many attempts'. Wait, or reset your password: a "
            "reset works even while the account is locked.\n\n"
            "Many failures from one network are also slowed down."
        ),
    },
    {
        "slug": "manage-sessions",
        "title": "Manage your sessions and devices",
        "type": "knowledge",
        "description": "See where you are signed in and sign out other devices.",
        "body": (
            "The Sessions page lists every device and browser signed in to your account with "
            "its IP address, browser and last activity. Revoke any of them to sign that device "
            "out immediately, or sign out everywhere at once."
        ),
    },
    {
        "slug": "change-email-address",
        "title": "Change your email address",
        "type": "knowledge",
        "description": "Move your account to a new email address.",
        "body": (
            "Under Account, enter the new email address and your current password. We mail a "
            "confirmation link to the new address; the change happens only when you open it. "
            "The old address is told about the change."
        ),
    },
    {
        "slug": "profile-and-organization",
        "title": "Edit your profile and organization",
        "type": "knowledge",
        "description": "Name, username, organization and time zone.",
        "body": (
            "Update your display name, username and organization on the Profile page. Your "
            "time zone (an IANA name such as Europe/Paris) controls how dates are shown in the "
            "portal."
        ),
    },
    {
        "slug": "notification-settings",
        "title": "Notification and automation settings",
        "type": "knowledge",
        "description": "Choose which emails and alerts you receive.",
        "body": (
            "Settings has switches for email notifications, alert notifications and system "
            "update notices, and for automation features such as auto patrol and smart alerts. "
            "Unchecked boxes are turned off; your choices are saved immediately."
        ),
    },
    {
        "slug": "create-a-project",
        "title": "Create a project",
        "type": "knowledge",
        "description": "Share a file with a name, description and visibility.",
        "body": (
            "A project is a named file with a description and an optional version. Choose "
            "public to let every signed-in user find it, or private to keep it to yourself. "
            "Another user's private project does not show up at all."
        ),
    },
    {
        "slug": "publish-software-package",
        "title": "Publish a software package",
        "type": "knowledge",
        "description": "Release versions of your software for others to download.",
        "body": (
            "A software package has a name, category, language and versions. Each version "
            "number follows Semantic Versioning (for example 1.4.2). The latest version shown "
            "is the highest SemVer, not the most recent upload.\n\n"
            "Only the owner can change a package's description, category or visibility."
        ),
    },
    {
        "slug": "resumable-uploads",
        "title": "Resumable uploads for large files",
        "type": "api",
        "description": "Upload big files in chunks and resume after a dropped connection.",
        "body": (
            "Large files are uploaded in chunks with the tus 1.0 protocol: create an upload, "
            "then send chunks with PATCH and the Upload-Offset header. If the connection drops, "
            "ask the server for the current offset with HEAD and continue from there.\n\n"
            "Stock tus clients such as tus-js-client and tuspy work unmodified. An unfinished "
            "upload expires after 24 hours."
        ),
    },
    {
        "slug": "upload-limits-and-quota",
        "title": "Upload size limits and storage quota",
        "type": "knowledge",
        "description": "How big a file can be and how much space you have.",
        "body": (
            "A single file may be up to 5 GiB. Every user has a storage quota of 25 GiB, and "
            "uploads still in progress count toward it. Delete old projects or package versions "
            "to free space."
        ),
    },
    {
        "slug": "malware-scanning",
        "title": "Malware scanning of uploads",
        "type": "support",
        "description": "Why an upload was rejected as malware.",
        "body": (
            "Every completed upload is scanned for viruses before it is published. A file that "
            "carries malware is refused with 'malware detected', nothing is published, and our "
            "security team is alerted. If you believe it is a false positive, contact support."
        ),
    },
    {
        "slug": "download-files",
        "title": "Download projects and packages",
        "type": "api",
        "description": "Resume downloads with Range requests and verify checksums.",
        "body": (
            "Downloads support HTTP Range requests, so a download manager can resume an "
            "interrupted transfer. The ETag of a file is its SHA-256 checksum: compare it with "
            "your copy to verify integrity."
        ),
    },
    {
        "slug": "pricing-plans",
        "title": "Plans and pricing",
        "type": "knowledge",
        "description": "Starter, Perimeter and Enterprise plans.",
        "body": (
            "Orbsurv comes in three plans: Starter for small sites, Perimeter for larger "
            "deployments and Enterprise for organizations that need custom terms. Prices on the "
            "website are the prices you pay; the checkout never accepts a different price."
        ),
    },
    {
        "slug": "pre-order",
        "title": "Pre-order a plan",
        "type": "knowledge",
        "description": "Reserve a plan and create your account from the emailed link.",
        "body": (
            "Choose a plan and submit the pre-order form with your name and email. We send a "
            "registration link to finish creating your account; the order is linked to it. If "
            "you already have an account, the email asks you to sign in instead."
        ),
    },
    {
        "slug": "billing-and-invoices",
        "title": "Billing and invoices",
        "type": "support",
        "description": "Payment methods, invoices and receipts.",
        "body": (
            "Invoices are issued monthly in the plan's currency and emailed to the account "
            "owner. Pay by card or bank transfer. For a VAT number on your invoice or a copy of "
            "a past receipt, write to billing through the contact form."
        ),
    },
    {
        "slug": "cancel-order",
        "title": "Cancel an order or subscription",
        "type": "support",
        "description": "Stop a pre-order or end your plan.",
        "body": (
            "To cancel a pre-order or subscription, contact support with the order email. An "
            "operator marks the order cancelled; you receive a confirmation. Refund requests "
            "for the current period are handled case by case."
        ),
    },
    {
        "slug": "api-authentication",
        "title": "API authentication with bearer tokens",
        "type": "api",
        "description": "Call the Orbsurv API with an access token.",
        "body": (
            "Send the access token in the Authorization header as 'Bearer <token>'. Access "
            "tokens are JWTs that expire after 15 minutes; exchange the refresh token at "
            "/api/v1/auth/refresh for a new pair. Refresh tokens are single use."
        ),
    },
    {
        "slug": "api-errors",
        "title": "API error format",
        "type": "api",
        "description": "Problem details with a stable error code.",
        "body": (
            "Every error response is application/problem+json with a human-readable detail "
            "and a stable code such as validation_error or not_found. Quote the request id "
            "(the X-Request-ID header) when you contact support about an error."
        ),
    },
    {
        "slug": "api-pagination",
        "title": "Pagination in API lists",
        "type": "api",
        "description": "Page through long lists with page, page_size and cursors.",
        "body": (
            "Lists take page and page_size (up to 100 items per page) and answer with items, "
            "total and pages. Append-only streams also return next_cursor: pass it back as "
            "cursor for the next page so deep pages are as fast as the first."
        ),
    },
    {
        "slug": "api-rate-limits",
        "title": "Rate limits",
        "type": "api",
        "description": "What happens when you send too many requests.",
        "body": (
            "When a limit is reached the API answers 429 Too Many Requests with a Retry-After "
            "header giving the number of seconds to wait. Public forms allow 10 submissions per "
            "10 minutes per address."
        ),
    },
    {
        "slug": "privacy-and-cookies",
        "title": "Privacy and cookie consent",
        "type": "knowledge",
        "description": "What we record and how consent works.",
        "body": (
            "The site asks for cookie consent before any analytics are recorded. Declining "
            "keeps analytics off. We never sell personal data; see the privacy policy for how "
            "long records are kept."
        ),
    },
    {
        "slug": "delete-your-account",
        "title": "Delete your account and data",
        "type": "support",
        "description": "Close the account and erase personal data.",
        "body": (
            "To delete your account permanently, contact support from the account's email "
            "address. Your projects, packages and personal data are erased; the audit trail "
            "keeps only what the law requires."
        ),
    },
    {
        "slug": "contact-support",
        "title": "Contact a person",
        "type": "support",
        "description": "Reach the support team when the assistant cannot help.",
        "body": (
            "Use the contact form on the website to reach a person. Include your account email "
            "and, for errors, the request id. We answer within one business day."
        ),
    },
    {
        "slug": "pilot-program",
        "title": "Join the pilot program",
        "type": "updates",
        "description": "Try Orbsurv early with your organization.",
        "body": (
            "Organizations can apply for the pilot program with the pilot request form: tell "
            "us your organization and your use case. Pilot members get early features and a "
            "direct line to the product team."
        ),
    },
    {
        "slug": "release-notes-november",
        "title": "Release notes: November",
        "type": "updates",
        "description": "What changed this month.",
        "body": (
            "New this month: a support chat that answers from the knowledge base, keyset "
            "cursors for the audit trail, and CSV exports in the operator console. Fixed: "
            "slugs that differ only in letter case."
        ),
    },
    {
        "slug": "waitlist",
        "title": "Join the waitlist",
        "type": "updates",
        "description": "Get notified when Orbsurv opens in your region.",
        "body": (
            "Sign up to the waitlist with your email to hear when new regions and features "
            "launch. Signing up twice keeps a single entry; you get one acknowledgement mail."
        ),
    },
    {
        "slug": "investor-relations",
        "title": "Investor relations",
        "type": "updates",
        "description": "How investors can get in touch.",
        "body": (
            "Investors interested in Orbsurv can register interest with the investor form, "
            "optionally with an amount and a note. The founders reply personally."
        ),
    },
]

QUESTIONS: list[tuple[str, str]] = [
    ("How do I register a new account?", "create-an-account"),
    ("I never got the verification email, how can I get a new link?", "verify-your-email"),
    ("Can I log in with my username instead of my email?", "sign-in"),
    ("I forgot my password", "reset-your-password"),
    ("How long is the password reset link valid?", "reset-your-password"),
    ("How do I change my password while I'm logged in?", "change-your-password"),
    ("What are the password requirements? Do I need symbols?", "password-rules"),
    ("How do I enable two-factor authentication?", "two-factor-totp"),
    ("Which authenticator app can I use for TOTP codes?", "two-factor-totp"),
    ("My phone with the authenticator app was stolen", "lost-authenticator"),
    ("Why does it say too many attempts when I sign in?", "account-lockout"),
    ("How can I sign out a device I lost?", "manage-sessions"),
    ("How do I move my account to a new email address?", "change-email-address"),
    ("Where do I set my time zone?", "profile-and-organization"),
    ("How do I turn off email notifications?", "notification-settings"),
    ("How can I keep a project private?", "create-a-project"),
    ("How is the latest version of a package chosen?", "publish-software-package"),
    ("My upload connection dropped halfway, can I resume it?", "resumable-uploads"),
    ("Does tus-js-client work for uploading?", "resumable-uploads"),
    ("What is the maximum file size and storage quota?", "upload-limits-and-quota"),
    ("My upload was rejected as malware detected", "malware-scanning"),
    ("How can I verify the checksum of a download?", "download-files"),
    ("What plans do you offer?", "pricing-plans"),
    ("How do I pre-order a plan?", "pre-order"),
    ("Can I get an invoice with my VAT number?", "billing-and-invoices"),
    ("How do I cancel my subscription?", "cancel-order"),
    ("How do I authenticate API calls with a bearer token?", "api-authentication"),
    ("What does the problem+json error code mean?", "api-errors"),
    ("How do cursors work for paging through lists?", "api-pagination"),
    ("I got a 429 response with Retry-After", "api-rate-limits"),
    ("Do you record analytics before cookie consent?", "privacy-and-cookies"),
    ("Please delete my account and all my data", "delete-your-account"),
    ("How can I talk to a human?", "contact-support"),
    ("How do we apply for the pilot program?", "pilot-program"),
    ("What changed in the November release?", "release-notes-november"),
    ("How do I join the waitlist?", "waitlist"),
    ("I am an investor, how do I get in touch?", "investor-relations"),
    ("How can I refresh an expired access token?", "api-authentication"),
]
