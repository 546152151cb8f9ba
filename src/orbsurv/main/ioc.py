"""The composition root's providers: the only place that knows which adapter serves which port.

APP scope: settings, engine, Redis client, S3 client, hasher, clock, probes.
REQUEST scope: the database connection (one transaction), repositories, use cases.
Providers never commit: use cases commit through ``UnitOfWork``; a request's connection rolls back
whatever was not committed when it closes.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Iterator

from dishka import Provider, Scope, alias, from_context, provide
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.ai.knowledge_base import Bm25PassageRetriever, KnowledgeBaseAssistant
from orbsurv.adapters.ai.openai_compatible import OpenAICompatibleAssistant
from orbsurv.adapters.cache.denylist import RedisTokenDenylist
from orbsurv.adapters.cache.limiter import FallbackRateLimiter, RedisRateLimiter
from orbsurv.adapters.cache.locks import RedisLock
from orbsurv.adapters.cache.memory import MemoryRateLimiter, MemoryTokenDenylist
from orbsurv.adapters.cache.profiles import MemoryProfileCache, RedisProfileCache
from orbsurv.adapters.cache.redis import CacheProbe, MemoryCacheProbe, RedisProbe, make_redis
from orbsurv.adapters.cache.slots import FallbackSlots, MemorySlots, RedisSlots
from orbsurv.adapters.clock import SystemClock
from orbsurv.adapters.mail.composer import JinjaEmailComposer
from orbsurv.adapters.mail.console import ConsoleMailer
from orbsurv.adapters.mail.smtp import MailProbe, SmtpMailer, SmtpProbe
from orbsurv.adapters.persistence.account import (
    SqlActionTokens,
    SqlDashboardReader,
    SqlMailRequests,
    SqlUserSettings,
)
from orbsurv.adapters.persistence.audit import SqlAlertSink, SqlAuditLog
from orbsurv.adapters.persistence.console import SqlConsoleReader, SqlSubmissionExport
from orbsurv.adapters.persistence.content import SqlPublishedResources, SqlResourceRepository
from orbsurv.adapters.persistence.database import DatabaseProbe, make_engine, reads_only
from orbsurv.adapters.persistence.files import (
    SqlObjectCleanups,
    SqlProjectDownloads,
    SqlProjectRepository,
    SqlStorageQuota,
)
from orbsurv.adapters.persistence.incidents import SqlAuditTrail
from orbsurv.adapters.persistence.leads import SqlAnalyticsStore, SqlLeadRepository
from orbsurv.adapters.persistence.locks import SqlLock
from orbsurv.adapters.persistence.migrations import schema_revisions
from orbsurv.adapters.persistence.orders import (
    SqlOrderExport,
    SqlOrderRepository,
    SqlRegistrationLinks,
)
from orbsurv.adapters.persistence.outbox import SqlOutbox
from orbsurv.adapters.persistence.packages import SqlPackageCatalog, SqlUploadStore
from orbsurv.adapters.persistence.sessions import (
    SqlSessionRepository,
    SqlSessionRevocations,
    SqlSessionStatus,
)
from orbsurv.adapters.persistence.support import (
    SqlConversationRepository,
    SqlSupportReplies,
    SqlTokenBudget,
)
from orbsurv.adapters.persistence.transactions import SqlTransactions
from orbsurv.adapters.persistence.unit_of_work import SqlUnitOfWork
from orbsurv.adapters.persistence.users import SqlUserLookup, SqlUserRepository
from orbsurv.adapters.persistence.waitlist import GroupCommitWaitlist
from orbsurv.adapters.scanning.clamd import ClamdScanner
from orbsurv.adapters.scanning.signature import SignatureScanner
from orbsurv.adapters.security.captcha import HttpCaptchaVerifier, NoCaptcha
from orbsurv.adapters.security.otp import TotpVerifier
from orbsurv.adapters.security.passwords import Argon2PasswordHasher
from orbsurv.adapters.security.tokens import JwtTokenCodec
from orbsurv.adapters.storage.local import LocalObjectStorage, LocalStorageProbe, StorageProbe
from orbsurv.adapters.storage.s3 import S3ObjectStorage, S3StorageProbe, make_s3_client
from orbsurv.adapters.versions import SemverScheme
from orbsurv.application.account.mail_requests import (
    ProcessMailRequests,
    RequestPasswordReset,
    ResendVerification,
    VerificationMailer,
)
from orbsurv.application.account.policy import AccountPolicy
from orbsurv.application.account.portal import (
    ChangePassword,
    DashboardSummary,
    ManageSettings,
    RequestEmailChange,
    UpdateOrganization,
    UpdateProfile,
)
from orbsurv.application.account.ports import (
    ActionTokens,
    DashboardReader,
    MailRequests,
    UserSettingsRepository,
)
from orbsurv.application.account.tokens import ResetPassword, VerifyEmail
from orbsurv.application.alerts import AlertingAuditLog, OutboxAlertNotifier
from orbsurv.application.analytics.record import RecordEvents
from orbsurv.application.console.denials import DenialPolicy, RecordDenial
from orbsurv.application.console.operate import AcknowledgeAlert, ManageUser, SendOperatorEmail
from orbsurv.application.console.ports import ConsoleReader, ConsoleViews, SubmissionExport
from orbsurv.application.content.manage import (
    CreateResource,
    DeleteResource,
    GetResource,
    ListResources,
    UpdateResource,
)
from orbsurv.application.content.ports import ResourceRepository
from orbsurv.application.files.ports import (
    FilesTransactions,
    FilesWork,
    ObjectCleanups,
    ProjectDownloads,
    ProjectRepository,
    StorageQuota,
)
from orbsurv.application.files.projects import (
    CountDownload,
    DeleteProject,
    FilesPolicy,
    FindDownload,
    GetProject,
    ListProjects,
    SetStorageQuota,
    SweepObjects,
    UpdateProject,
    UploadProject,
)
from orbsurv.application.identity.authenticate import Authenticate
from orbsurv.application.identity.create_user import CreateUser
from orbsurv.application.identity.credentials import CheckCurrentPassword, LockoutNotice
from orbsurv.application.identity.login import LogIn
from orbsurv.application.identity.logout import ListSessions, LogOut, RevokeSession
from orbsurv.application.identity.otp import ManageOtp
from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.application.identity.ports import (
    OtpVerifier,
    PasswordHasher,
    ProfileCache,
    RateLimiter,
    SessionRepository,
    SessionRevocations,
    SessionStatus,
    TokenCodec,
    TokenDenylist,
    UserLookup,
    UserRepository,
)
from orbsurv.application.identity.profile import GetProfile
from orbsurv.application.identity.refresh import RotateRefreshToken
from orbsurv.application.identity.register import RegisterUser
from orbsurv.application.identity.seed import SeedSuperuser
from orbsurv.application.identity.sessions import SessionIssuer
from orbsurv.application.leads.ports import (
    AnalyticsStore,
    CaptchaVerifier,
    ConsentViews,
    LeadRepository,
    SubmissionViews,
    Waitlist,
)
from orbsurv.application.leads.submit import (
    IntakePolicy,
    JoinWaitlist,
    ReportClientError,
    SubmitLead,
)
from orbsurv.application.locking import Lock
from orbsurv.application.orders.manage import CancelOrder, ListMyOrders, ListOrders
from orbsurv.application.orders.place import PlaceOrder
from orbsurv.application.orders.policy import OrderPolicy
from orbsurv.application.orders.ports import OrderExport, OrderRepository, RegistrationLinks
from orbsurv.application.orders.registration import RegisterFromOrder, ViewOrderLink
from orbsurv.application.outbox import DeliverOutbox
from orbsurv.application.packages.catalog import (
    CountPackageDownload,
    DeletePackage,
    FindVersion,
    ListPackages,
    ListVersions,
    SummarisePackages,
    UpdatePackage,
)
from orbsurv.application.packages.ports import (
    AuditTrail,
    PackageCatalog,
    UploadStore,
    VersionScheme,
)
from orbsurv.application.packages.uploads import (
    AbortUpload,
    AppendUploadChunk,
    CompleteUpload,
    CreateUpload,
    GetUploadStatus,
    PublishPackage,
    PublishPendingUploads,
    SweepUploads,
    UploadPolicy,
)
from orbsurv.application.ports import (
    AlertSink,
    AuditLog,
    Clock,
    EmailComposer,
    Mailer,
    MalwareScanner,
    ObjectStorage,
    Outbox,
    OutboxStore,
    UnitOfWork,
)
from orbsurv.application.slots import Slots, UploadGate
from orbsurv.application.support.chat import (
    AnswerSupport,
    AskSupport,
    ChatPolicy,
    ReadSupportHistory,
    ReviewSupportChats,
)
from orbsurv.application.support.ports import (
    ConversationRepository,
    PassageRetriever,
    SupportAssistant,
    SupportReplies,
    SupportTransactions,
    SupportWork,
)
from orbsurv.application.system.readiness import CheckReadiness
from orbsurv.application.throttle import Budget, ThrottleClient, ThrottlePolicy
from orbsurv.domain.files import normalise_extensions
from orbsurv.domain.identity import TokenPurpose
from orbsurv.main.settings import Settings


class ActionTokenKeys(dict[TokenPurpose, bytes]):
    """The HMAC key of each action-token purpose (a type of its own for the container)."""


class OrderLinkKey(bytes):
    """The HMAC key of pre-order registration links (a type of its own for the container)."""


class CoreProvider(Provider):
    settings = from_context(provides=Settings, scope=Scope.APP)

    @provide(scope=Scope.APP)
    async def engine(self, settings: Settings) -> AsyncIterator[AsyncEngine]:
        engine = make_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            pool_timeout=settings.db_pool_timeout_seconds,
            connect_timeout=settings.db_connect_timeout_seconds,
            statement_timeout=settings.db_statement_timeout_seconds,
        )
        yield engine
        await engine.dispose()

    @provide(scope=Scope.APP)
    def clock(self) -> Clock:
        return SystemClock()

    @provide(scope=Scope.APP)
    def password_hasher(self) -> Iterator[PasswordHasher]:
        hasher = Argon2PasswordHasher()
        yield hasher
        hasher.close()

    @provide(scope=Scope.APP)
    def readiness(
        self, engine: AsyncEngine, cache: CacheProbe, storage: StorageProbe
    ) -> CheckReadiness:
        return CheckReadiness([DatabaseProbe(engine, schema_revisions()), cache, storage])

    @provide(scope=Scope.REQUEST)
    async def connection(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        async with engine.connect() as connection:
            yield connection  # closing rolls back anything not committed

    unit_of_work = provide(SqlUnitOfWork, scope=Scope.REQUEST, provides=UnitOfWork)
    users = provide(SqlUserRepository, scope=Scope.REQUEST, provides=UserRepository)
    alert_sink = provide(SqlAlertSink, scope=Scope.REQUEST, provides=AlertSink)

    @provide(scope=Scope.REQUEST)
    def audit_log(
        self, connection: AsyncConnection, alerts: AlertSink, outbox: Outbox, settings: Settings
    ) -> AuditLog:
        notifier = OutboxAlertNotifier(outbox, settings.alert_emails)
        return AlertingAuditLog(SqlAuditLog(connection), alerts, notifier)

    create_user = provide(CreateUser, scope=Scope.REQUEST)


class IdentityProvider(Provider):
    @provide(scope=Scope.APP)
    def policy(self, settings: Settings) -> IdentityPolicy:
        return IdentityPolicy(
            refresh_ttl_seconds=settings.refresh_token_expire_minutes * 60,
            refresh_reuse_grace_seconds=settings.refresh_reuse_grace_seconds,
            session_absolute_seconds=settings.session_absolute_lifetime_hours * 3600,
            dev_session_reauth_seconds=settings.dev_session_reauth_hours * 3600,
            require_verified_email=settings.auth_require_verified_email,
            dev_master_otp=settings.dev_master_otp if settings.env == "development" else None,
        )

    @provide(scope=Scope.APP)
    def token_codec(self, settings: Settings) -> TokenCodec:
        return JwtTokenCodec(settings.jwt_secret_key, settings.access_token_expire_minutes * 60)

    otp = provide(TotpVerifier, scope=Scope.APP, provides=OtpVerifier)

    @provide(scope=Scope.APP)
    def session_status(self, engine: AsyncEngine) -> SessionStatus:
        return SqlSessionStatus(engine)

    @provide(scope=Scope.APP)
    def session_revocations(self, engine: AsyncEngine) -> SessionRevocations:
        return SqlSessionRevocations(engine)

    authenticate = provide(Authenticate, scope=Scope.APP)

    sessions = provide(SqlSessionRepository, scope=Scope.REQUEST, provides=SessionRepository)
    issuer = provide(SessionIssuer, scope=Scope.REQUEST)
    lockout_notice = provide(LockoutNotice, scope=Scope.REQUEST)
    check_password = provide(CheckCurrentPassword, scope=Scope.REQUEST)
    register = provide(RegisterUser, scope=Scope.REQUEST)
    login = provide(LogIn, scope=Scope.REQUEST)
    refresh = provide(RotateRefreshToken, scope=Scope.REQUEST)
    logout = provide(LogOut, scope=Scope.REQUEST)
    list_sessions = provide(ListSessions, scope=Scope.REQUEST)
    revoke_session = provide(RevokeSession, scope=Scope.REQUEST)

    @provide(scope=Scope.APP)
    def user_lookup(self, engine: AsyncEngine) -> UserLookup:
        return SqlUserLookup(engine)

    profile = provide(GetProfile, scope=Scope.APP)
    manage_otp = provide(ManageOtp, scope=Scope.REQUEST)
    seed_superuser = provide(SeedSuperuser, scope=Scope.REQUEST)


class AccountProvider(Provider):
    @provide(scope=Scope.APP)
    def policy(self, settings: Settings) -> AccountPolicy:
        return AccountPolicy(
            base_url=settings.backend_url, command_center_url=settings.command_center_url
        )

    @provide(scope=Scope.APP)
    def token_keys(self, settings: Settings) -> ActionTokenKeys:
        verify = settings.email_verify_secret.encode()
        return ActionTokenKeys(
            {
                TokenPurpose.VERIFY_EMAIL: hmac.new(verify, b"verify_email", "sha256").digest(),
                TokenPurpose.CHANGE_EMAIL: hmac.new(verify, b"change_email", "sha256").digest(),
                TokenPurpose.RESET_PASSWORD: settings.password_reset_secret.encode(),
            }
        )

    @provide(scope=Scope.REQUEST)
    def action_tokens(self, connection: AsyncConnection, keys: ActionTokenKeys) -> ActionTokens:
        return SqlActionTokens(connection, keys)

    @provide(scope=Scope.APP)
    def composer(self, policy: AccountPolicy, settings: Settings) -> EmailComposer:
        return JinjaEmailComposer(
            verify_hours=policy.verify_ttl_seconds // 3600,
            reset_minutes=policy.reset_ttl_seconds // 60,
            order_link_days=max(1, settings.order_link_ttl_hours // 24),
        )

    outbox_writer = provide(SqlOutbox, scope=Scope.REQUEST)
    outbox = alias(source=SqlOutbox, provides=Outbox)
    outbox_store = alias(source=SqlOutbox, provides=OutboxStore)

    @provide(scope=Scope.REQUEST)
    def deliver(
        self, store: OutboxStore, mailer: Mailer, uow: UnitOfWork, clock: Clock
    ) -> DeliverOutbox:
        return DeliverOutbox(store, mailer, uow, clock)

    settings_repository = provide(
        SqlUserSettings, scope=Scope.REQUEST, provides=UserSettingsRepository
    )
    dashboard_reader = provide(SqlDashboardReader, scope=Scope.REQUEST, provides=DashboardReader)
    verification = provide(VerificationMailer, scope=Scope.REQUEST)
    mail_requests = provide(SqlMailRequests, scope=Scope.REQUEST, provides=MailRequests)
    process_requests = provide(ProcessMailRequests, scope=Scope.REQUEST)
    resend = provide(ResendVerification, scope=Scope.REQUEST)
    request_reset = provide(RequestPasswordReset, scope=Scope.REQUEST)
    verify = provide(VerifyEmail, scope=Scope.REQUEST)
    reset = provide(ResetPassword, scope=Scope.REQUEST)
    update_profile = provide(UpdateProfile, scope=Scope.REQUEST)
    update_organization = provide(UpdateOrganization, scope=Scope.REQUEST)
    change_password = provide(ChangePassword, scope=Scope.REQUEST)
    change_email = provide(RequestEmailChange, scope=Scope.REQUEST)
    manage_settings = provide(ManageSettings, scope=Scope.REQUEST)
    dashboard = provide(DashboardSummary, scope=Scope.REQUEST)


class IntakeProvider(Provider):
    @provide(scope=Scope.APP)
    def policy(self, settings: Settings) -> IntakePolicy:
        return IntakePolicy(
            form_limit=settings.form_rate_limit,
            form_window_seconds=settings.form_rate_window_seconds,
            error_limit=settings.client_error_rate_limit,
            error_window_seconds=settings.client_error_rate_window_seconds,
            captcha_required=settings.captcha_secret_key is not None,
        )

    @provide(scope=Scope.APP)
    def throttle_policy(self, settings: Settings) -> ThrottlePolicy:
        return ThrottlePolicy(
            analytics=Budget(settings.analytics_rate_limit, settings.analytics_rate_window_seconds),
            registration=Budget(
                settings.registration_rate_limit, settings.registration_rate_window_seconds
            ),
        )

    throttle = provide(ThrottleClient, scope=Scope.APP)

    @provide(scope=Scope.APP)
    async def captcha(self, settings: Settings) -> AsyncIterator[CaptchaVerifier]:
        if settings.captcha_secret_key is None:
            yield NoCaptcha()
            return
        verifier = HttpCaptchaVerifier(settings.captcha_secret_key, settings.captcha_verify_url)
        yield verifier
        await verifier.aclose()

    @provide(scope=Scope.APP)
    async def waitlist(self, engine: AsyncEngine) -> AsyncIterator[Waitlist]:
        writer = GroupCommitWaitlist(engine)
        yield writer
        await writer.close()

    join_waitlist = provide(JoinWaitlist, scope=Scope.APP)

    @provide(scope=Scope.REQUEST)
    async def submission_views(self, engine: AsyncEngine) -> AsyncIterator[SubmissionViews]:
        async with reads_only(engine).connect() as connection:
            yield SqlLeadRepository(connection)

    @provide(scope=Scope.REQUEST)
    async def consent_views(self, engine: AsyncEngine) -> AsyncIterator[ConsentViews]:
        async with reads_only(engine).connect() as connection:
            yield SqlAnalyticsStore(connection)

    leads = provide(SqlLeadRepository, scope=Scope.REQUEST, provides=LeadRepository)
    analytics = provide(SqlAnalyticsStore, scope=Scope.REQUEST, provides=AnalyticsStore)
    submit = provide(SubmitLead, scope=Scope.REQUEST)
    report_error = provide(ReportClientError, scope=Scope.REQUEST)
    record_events = provide(RecordEvents, scope=Scope.REQUEST)


class OrdersProvider(Provider):
    @provide(scope=Scope.APP)
    def policy(self, settings: Settings) -> OrderPolicy:
        return OrderPolicy(
            catalogue=settings.plan_catalogue,
            link_ttl_seconds=settings.order_link_ttl_hours * 3600,
            signup_url=settings.order_signup_page,
        )

    @provide(scope=Scope.APP)
    def link_key(self, settings: Settings) -> OrderLinkKey:
        secret = settings.email_verify_secret.encode()
        return OrderLinkKey(hmac.new(secret, b"order_registration", "sha256").digest())

    @provide(scope=Scope.REQUEST)
    def links(self, connection: AsyncConnection, key: OrderLinkKey) -> RegistrationLinks:
        return SqlRegistrationLinks(connection, bytes(key))

    @provide(scope=Scope.APP)
    def export(self, engine: AsyncEngine) -> OrderExport:
        return SqlOrderExport(engine)

    orders = provide(SqlOrderRepository, scope=Scope.REQUEST, provides=OrderRepository)
    place = provide(PlaceOrder, scope=Scope.REQUEST)
    view_link = provide(ViewOrderLink, scope=Scope.REQUEST)
    register = provide(RegisterFromOrder, scope=Scope.REQUEST)
    mine = provide(ListMyOrders, scope=Scope.REQUEST)
    list_orders = provide(ListOrders, scope=Scope.REQUEST)
    cancel = provide(CancelOrder, scope=Scope.REQUEST)


class ConsoleProvider(Provider):
    reader = provide(SqlConsoleReader, scope=Scope.REQUEST, provides=ConsoleReader)

    @provide(scope=Scope.REQUEST)
    async def views(self, engine: AsyncEngine) -> AsyncIterator[ConsoleViews]:
        async with reads_only(engine).connect() as connection:
            yield SqlConsoleReader(connection)

    @provide(scope=Scope.APP)
    def export(self, engine: AsyncEngine) -> SubmissionExport:
        return SqlSubmissionExport(engine)

    manage_user = provide(ManageUser, scope=Scope.REQUEST)
    acknowledge = provide(AcknowledgeAlert, scope=Scope.REQUEST)
    send_email = provide(SendOperatorEmail, scope=Scope.REQUEST)
    record_denial = provide(RecordDenial, scope=Scope.REQUEST)

    @provide(scope=Scope.APP)
    def denial_policy(self, settings: Settings) -> DenialPolicy:
        return DenialPolicy(audit_limit=settings.denial_audit_limit)


class ContentProvider(Provider):
    resources = provide(SqlResourceRepository, scope=Scope.REQUEST, provides=ResourceRepository)
    list_resources = provide(ListResources, scope=Scope.REQUEST)
    get_resource = provide(GetResource, scope=Scope.REQUEST)
    create_resource = provide(CreateResource, scope=Scope.REQUEST)
    update_resource = provide(UpdateResource, scope=Scope.REQUEST)
    delete_resource = provide(DeleteResource, scope=Scope.REQUEST)


class SupportProvider(Provider):
    @provide(scope=Scope.APP)
    def policy(self, settings: Settings) -> ChatPolicy:
        return ChatPolicy(
            messages_per_minute=settings.support_messages_per_minute,
            daily_tokens=settings.support_daily_tokens,
            history_tokens=settings.support_history_tokens,
            reply_tokens=settings.support_reply_tokens,
        )

    @provide(scope=Scope.APP)
    def retriever(self, engine: AsyncEngine) -> PassageRetriever:
        return Bm25PassageRetriever(SqlPublishedResources(engine))

    @provide(scope=Scope.APP)
    def replies(self, engine: AsyncEngine) -> SupportReplies:
        return SqlSupportReplies(engine)

    @provide(scope=Scope.APP)
    def transactions(self, engine: AsyncEngine) -> SupportTransactions:
        """Short transactions: a chat request never holds a connection while the model writes."""

        def work(connection: AsyncConnection) -> SupportWork:
            return SupportWork(
                conversations=SqlConversationRepository(connection),
                budget=SqlTokenBudget(connection),
                uow=SqlUnitOfWork(connection),
            )

        return SqlTransactions(engine, work)

    conversations = provide(
        SqlConversationRepository, scope=Scope.REQUEST, provides=ConversationRepository
    )
    ask = provide(AskSupport, scope=Scope.APP)
    answer = provide(AnswerSupport, scope=Scope.APP)
    history = provide(ReadSupportHistory, scope=Scope.REQUEST)
    review = provide(ReviewSupportChats, scope=Scope.REQUEST)


class KnowledgeBaseAssistantProvider(Provider):
    """The default assistant: local retrieval, no network."""

    @provide(scope=Scope.APP)
    def assistant(self) -> SupportAssistant:
        return KnowledgeBaseAssistant()


class OpenAIAssistantProvider(Provider):
    """An OpenAI-compatible model at ``AI_BASE_URL``."""

    @provide(scope=Scope.APP)
    async def assistant(self, settings: Settings) -> AsyncIterator[SupportAssistant]:
        assert settings.ai_base_url is not None
        assert settings.ai_model is not None
        assistant = OpenAICompatibleAssistant(
            settings.ai_base_url,
            settings.ai_model,
            settings.ai_api_key,
            connect_timeout=settings.ai_connect_timeout_seconds,
            read_timeout=settings.ai_timeout_seconds,
            max_retries=settings.ai_max_retries,
            reply_tokens=settings.support_reply_tokens,
        )
        yield assistant
        await assistant.aclose()


class FilesProvider(Provider):
    @provide(scope=Scope.APP)
    def policy(self, settings: Settings) -> FilesPolicy:
        return FilesPolicy(
            max_upload_bytes=settings.max_upload_bytes,
            allowed_extensions=normalise_extensions(settings.allowed_project_extensions),
            uploads_per_hour=settings.project_uploads_per_hour,
        )

    @provide(scope=Scope.APP)
    def scanner(self, settings: Settings) -> MalwareScanner:
        if settings.malware_scanner == "clamd":
            assert settings.clamd_address is not None
            return ClamdScanner(
                settings.clamd_address,
                timeout=settings.clamd_timeout_seconds,
                connect_timeout=settings.clamd_connect_timeout_seconds,
            )
        return SignatureScanner(settings.malware_sha256_denylist)

    @provide(scope=Scope.APP)
    def downloads(self, engine: AsyncEngine) -> ProjectDownloads:
        return SqlProjectDownloads(engine)

    @provide(scope=Scope.APP)
    def transactions(
        self, engine: AsyncEngine, clock: Clock, settings: Settings
    ) -> FilesTransactions:
        """Short transactions for the upload, which must hold no connection while it streams."""

        def work(connection: AsyncConnection) -> FilesWork:
            notifier = OutboxAlertNotifier(SqlOutbox(connection, clock), settings.alert_emails)
            return FilesWork(
                projects=SqlProjectRepository(connection),
                quota=SqlStorageQuota(connection, settings.user_quota_bytes),
                cleanups=SqlObjectCleanups(connection),
                audit=AlertingAuditLog(SqlAuditLog(connection), SqlAlertSink(connection), notifier),
                uow=SqlUnitOfWork(connection),
            )

        return SqlTransactions(engine, work)

    @provide(scope=Scope.APP)
    def gate(self, slots: Slots, settings: Settings) -> UploadGate:
        return UploadGate(slots, per_user=settings.upload_max_concurrent_per_user)

    @provide(scope=Scope.REQUEST)
    def quota(self, connection: AsyncConnection, settings: Settings) -> StorageQuota:
        return SqlStorageQuota(connection, settings.user_quota_bytes)

    projects = provide(SqlProjectRepository, scope=Scope.REQUEST, provides=ProjectRepository)
    cleanups = provide(SqlObjectCleanups, scope=Scope.REQUEST, provides=ObjectCleanups)
    upload = provide(UploadProject, scope=Scope.APP)
    get_project = provide(GetProject, scope=Scope.REQUEST)
    list_projects = provide(ListProjects, scope=Scope.REQUEST)
    update_project = provide(UpdateProject, scope=Scope.REQUEST)
    delete_project = provide(DeleteProject, scope=Scope.REQUEST)
    sweep = provide(SweepObjects, scope=Scope.REQUEST)
    set_quota = provide(SetStorageQuota, scope=Scope.REQUEST)
    find_download = provide(FindDownload, scope=Scope.APP)
    count_download = provide(CountDownload, scope=Scope.APP)


class PackagesProvider(Provider):
    """Software packages: every piece is APP scope (the stores open short transactions)."""

    @provide(scope=Scope.APP)
    def policy(self, settings: Settings) -> UploadPolicy:
        return UploadPolicy(
            max_upload_bytes=settings.max_upload_bytes,
            session_ttl_seconds=settings.upload_session_ttl_seconds,
            idle_timeout_seconds=settings.upload_idle_timeout_seconds,
            lock_ttl_seconds=settings.upload_lock_ttl_seconds,
            part_size=settings.upload_chunk_bytes,
            max_open_uploads=settings.upload_max_open_sessions,
            max_versions=settings.package_max_versions,
            publishes_per_hour=settings.package_publishes_per_hour,
        )

    @provide(scope=Scope.APP)
    def versions(self) -> VersionScheme:
        return SemverScheme()

    @provide(scope=Scope.APP)
    def uploads(self, engine: AsyncEngine, settings: Settings) -> UploadStore:
        return SqlUploadStore(engine, settings.user_quota_bytes)

    @provide(scope=Scope.APP)
    def catalog(self, engine: AsyncEngine, clock: Clock, settings: Settings) -> PackageCatalog:
        """Each catalogue change records its audit events on its own transaction's connection."""

        def audit_log(connection: AsyncConnection) -> AuditLog:
            notifier = OutboxAlertNotifier(SqlOutbox(connection, clock), settings.alert_emails)
            return AlertingAuditLog(SqlAuditLog(connection), SqlAlertSink(connection), notifier)

        return SqlPackageCatalog(engine, settings.user_quota_bytes, audit_log)

    @provide(scope=Scope.APP)
    def complete(
        self,
        store: UploadStore,
        catalog: PackageCatalog,
        storage: ObjectStorage,
        lock: Lock,
        clock: Clock,
        policy: UploadPolicy,
        scanner: MalwareScanner,
        trail: AuditTrail,
    ) -> CompleteUpload:
        return CompleteUpload(store, catalog, storage, lock, clock, policy, scanner, trail)

    @provide(scope=Scope.APP)
    def trail(self, engine: AsyncEngine, clock: Clock, settings: Settings) -> AuditTrail:
        return SqlAuditTrail(engine, clock, settings.alert_emails)

    create = provide(CreateUpload, scope=Scope.APP)
    publish = provide(PublishPackage, scope=Scope.APP)
    status = provide(GetUploadStatus, scope=Scope.APP)
    append = provide(AppendUploadChunk, scope=Scope.APP)
    abort = provide(AbortUpload, scope=Scope.APP)
    sweep = provide(SweepUploads, scope=Scope.APP)
    publish_pending = provide(PublishPendingUploads, scope=Scope.APP)
    list_packages = provide(ListPackages, scope=Scope.APP)
    list_versions = provide(ListVersions, scope=Scope.APP)
    find_version = provide(FindVersion, scope=Scope.APP)
    count_download = provide(CountPackageDownload, scope=Scope.APP)
    update_package = provide(UpdatePackage, scope=Scope.APP)
    delete_package = provide(DeletePackage, scope=Scope.APP)
    summarise = provide(SummarisePackages, scope=Scope.APP)


class MemoryCacheProvider(Provider):
    @provide(scope=Scope.APP)
    def lock(self, engine: AsyncEngine) -> Lock:
        """Without Redis the database serialises writers (several processes may share it)."""
        return SqlLock(engine)

    @provide(scope=Scope.APP)
    def probe(self) -> CacheProbe:
        return MemoryCacheProbe()

    @provide(scope=Scope.APP)
    def slots(self) -> Slots:
        return MemorySlots()

    @provide(scope=Scope.APP)
    async def denylist(
        self, revocations: SessionRevocations, codec: TokenCodec
    ) -> AsyncIterator[TokenDenylist]:
        denylist = MemoryTokenDenylist(revocations, lifetime_seconds=codec.accepted_for_seconds)
        await denylist.start()
        yield denylist
        await denylist.stop()

    @provide(scope=Scope.APP)
    def limiter(self) -> RateLimiter:
        return MemoryRateLimiter()

    @provide(scope=Scope.APP)
    def profiles(self) -> ProfileCache:
        return MemoryProfileCache()


class RedisCacheProvider(Provider):
    @provide(scope=Scope.APP)
    async def redis(self, settings: Settings) -> AsyncIterator[Redis]:
        assert settings.redis_url is not None
        client = make_redis(settings.redis_url, timeout=settings.redis_timeout_seconds)
        yield client
        await client.aclose()

    @provide(scope=Scope.APP)
    def probe(self, redis: Redis) -> CacheProbe:
        return RedisProbe(redis)

    @provide(scope=Scope.APP)
    def lock(self, redis: Redis) -> Lock:
        return RedisLock(redis)

    @provide(scope=Scope.APP)
    def slots(self, redis: Redis) -> Slots:
        return FallbackSlots(RedisSlots(redis))

    @provide(scope=Scope.APP)
    async def denylist(
        self,
        redis: Redis,
        revocations: SessionRevocations,
        codec: TokenCodec,
        settings: Settings,
    ) -> AsyncIterator[TokenDenylist]:
        denylist = RedisTokenDenylist(
            redis,
            revocations,
            lifetime_seconds=codec.accepted_for_seconds,
            poll_seconds=settings.revocation_poll_seconds,
        )
        await denylist.start()
        yield denylist
        await denylist.stop()

    @provide(scope=Scope.APP)
    async def limiter(self, redis: Redis) -> AsyncIterator[RateLimiter]:
        primary = RedisRateLimiter(redis)
        yield FallbackRateLimiter(primary)
        await primary.close()

    @provide(scope=Scope.APP)
    async def profiles(self, redis: Redis) -> AsyncIterator[ProfileCache]:
        cache = RedisProfileCache(redis)
        cache.start()
        yield cache
        await cache.stop()


class LocalStorageProvider(Provider):
    @provide(scope=Scope.APP)
    def storage(self, settings: Settings) -> ObjectStorage:
        return LocalObjectStorage(settings.upload_root)

    @provide(scope=Scope.APP)
    def probe(self, settings: Settings) -> StorageProbe:
        return LocalStorageProbe(settings.upload_root)


class S3StorageProvider(Provider):
    @provide(scope=Scope.APP)
    def s3_storage(self, settings: Settings) -> Iterator[S3ObjectStorage]:
        assert settings.s3_bucket is not None
        client = make_s3_client(
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=settings.aws_secret_access_key,
            connect_timeout=settings.s3_connect_timeout_seconds,
            read_timeout=settings.s3_read_timeout_seconds,
            max_attempts=settings.s3_max_attempts,
        )
        storage = S3ObjectStorage(client, settings.s3_bucket)
        yield storage
        storage.close()

    storage = alias(source=S3ObjectStorage, provides=ObjectStorage)

    @provide(scope=Scope.APP)
    def probe(self, storage: S3ObjectStorage) -> StorageProbe:
        return S3StorageProbe(storage)


class ConsoleMailProvider(Provider):
    @provide(scope=Scope.APP)
    def mailer(self) -> Mailer:
        return ConsoleMailer()

    @provide(scope=Scope.APP)
    def probe(self) -> MailProbe:
        return MailProbe()


class SmtpMailProvider(Provider):
    @provide(scope=Scope.APP)
    def smtp(self, settings: Settings) -> SmtpMailer:
        assert settings.smtp_host is not None
        return SmtpMailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            security=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout_seconds,
        )

    mailer = alias(source=SmtpMailer, provides=Mailer)

    @provide(scope=Scope.APP)
    def probe(self, smtp: SmtpMailer) -> MailProbe:
        return SmtpProbe(smtp)


def providers_for(settings: Settings) -> list[Provider]:
    """Pick one adapter per swappable port from the settings."""
    return [
        CoreProvider(),
        IdentityProvider(),
        AccountProvider(),
        IntakeProvider(),
        OrdersProvider(),
        ConsoleProvider(),
        ContentProvider(),
        SupportProvider(),
        OpenAIAssistantProvider() if settings.ai_base_url else KnowledgeBaseAssistantProvider(),
        FilesProvider(),
        PackagesProvider(),
        RedisCacheProvider() if settings.redis_url else MemoryCacheProvider(),
        S3StorageProvider() if settings.storage_backend == "s3" else LocalStorageProvider(),
        SmtpMailProvider() if settings.uses_smtp else ConsoleMailProvider(),
    ]
