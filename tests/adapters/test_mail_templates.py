from __future__ import annotations

from orbsurv.adapters.mail.composer import JinjaEmailComposer

LINK = "https://app.example/api/v1/auth/verify-page?token=abc&x=<y>"


def test_templates_render_text_and_escaped_html() -> None:
    composer = JinjaEmailComposer()
    for mail in (
        composer.verify_email("a@example.com", LINK),
        composer.reset_password("a@example.com", LINK),
        composer.confirm_new_email("a@example.com", LINK),
    ):
        assert mail.to == "a@example.com"
        assert LINK in mail.text
        assert mail.html is not None
        assert "&amp;x=&lt;y&gt;" in mail.html  # autoescaped
        assert "<y>" not in mail.html
    notice = composer.email_change_notice("old@example.com")
    assert "new address" in notice.text
    assert "password" in composer.password_changed("a@example.com").text


def test_the_lockout_notice_names_the_pause_and_the_way_out() -> None:
    mail = JinjaEmailComposer().sign_in_locked("a@example.com", 15)
    assert mail.to == "a@example.com"
    assert mail.subject == "Sign-ins to your account were paused"
    assert "15 minutes" in mail.text
    assert "Forgot password" in mail.text
    assert mail.html is not None
    assert "15 minutes" in mail.html
