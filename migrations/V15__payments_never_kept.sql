-- The payment saga keeps no money it should not (see V14 for the saga itself):
--   - a payment is processed once, whatever webhook-id it is re-sent under: its refund is
--     never asked for twice;
--   - a mismatched payment is asked back when it no longer stands for the stay: when the
--     hold expires or the stay is canceled, and when another payment replaces it;
--   - a payment for a stay already archived is asked back;
--   - a refund counts only for a payment of that stay, in that payment's currency.

CREATE INDEX payment_events_by_payment ON payment_events (payment_id);

-- The currency a payment of a reservation was made in (a mismatched one's may not be the
-- stay's), or the stay's when the provider never reported it.
CREATE FUNCTION payment_currency(p_payment_id text, p_reservation_id uuid, p_fallback text)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT currency FROM payment_events
         WHERE payment_id = p_payment_id AND reservation_id = p_reservation_id
           AND type = 'payment.succeeded'
         ORDER BY received_at LIMIT 1),
        p_fallback)
$$;

-- A status change is reservation.<status>; a stay that ends holding money asks it back:
-- canceling a paid stay, and canceling or expiring a stay whose payment was mismatched.
CREATE OR REPLACE FUNCTION reservation_changed_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (type, reservation_id, hotel_id, data, refund)
    SELECT e.type, n.reservation_id, n.hotel_id, to_jsonb(n), e.refund
    FROM new_rows n
    JOIN old_rows o ON o.reservation_id = n.reservation_id
    CROSS JOIN LATERAL (
        SELECT 1 AS rank, 'reservation.' || n.status AS type, NULL::jsonb AS refund
        WHERE n.status <> o.status
        UNION ALL
        SELECT 2, 'refund.requested',
               jsonb_build_object('payment_id', o.payment_id, 'amount_cents', o.paid_cents,
                                  'currency', payment_currency(o.payment_id, o.reservation_id,
                                                               o.currency))
        WHERE n.status IN ('canceled', 'expired') AND o.status NOT IN ('canceled', 'expired')
          AND o.payment_status IN ('paid', 'mismatched')
    ) e
    ORDER BY n.reservation_id, e.rank;
    RETURN NULL;
END
$$;

DROP TRIGGER reservations_cancel_refund ON reservations;
DROP FUNCTION cancel_asks_refund();

-- The payment status of a stay that ends holding money, in the same change.
CREATE FUNCTION ending_asks_refund() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.payment_status := 'refund_requested';
    RETURN NEW;
END
$$;

CREATE TRIGGER reservations_ending_refund BEFORE UPDATE OF status ON reservations
    FOR EACH ROW WHEN (NEW.status IN ('canceled', 'expired')
                       AND OLD.status NOT IN ('canceled', 'expired')
                       AND OLD.payment_status IN ('paid', 'mismatched'))
    EXECUTE FUNCTION ending_asks_refund();

-- Asks for a payment back: refund.requested for the reservation as `data` shows it.
CREATE FUNCTION ask_refund(p_reservation_id uuid, p_hotel_id bigint, p_data jsonb,
                           p_payment_id text, p_amount_cents bigint, p_currency text)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO events (type, reservation_id, hotel_id, data, refund)
    VALUES ('refund.requested', p_reservation_id, p_hotel_id, p_data,
            jsonb_build_object('payment_id', p_payment_id, 'amount_cents', p_amount_cents,
                               'currency', p_currency))
$$;

-- The payment saga's step for one provider event, in one transaction with the change it
-- makes and the events that change writes. Answers what it did:
--   duplicate            this webhook-id, or this payment under another id, was
--                        processed before; nothing changed
--   unknown_reservation  no such reservation on this shard; recorded, nothing changed
--   confirmed            paid in full while pending and held: confirmed
--   mismatched           wrong amount or currency: still pending, recorded for staff
--   refund_requested     paid after the hold ended, after a cancel, a second time, or for
--                        a stay archived since: nothing re-taken, refund.requested emitted
--   failed               a failed payment: the hold stays until it expires
--   refunded             a refund of a payment of this stay reported
--   ignored              nothing to change (a failure after a success, a refund of a
--                        payment this stay never had, or in another currency)
-- A payment that replaces a mismatched one (paid right, or mismatched again) also asks the
-- mismatched one back.
CREATE OR REPLACE FUNCTION apply_payment(
    p_webhook_id     text,
    p_type           text,
    p_payment_id     text,
    p_reservation_id uuid,
    p_amount_cents   bigint,
    p_currency       text,
    p_now            timestamptz
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r          reservations;
    v_found    boolean;
    v_outcome  text;
    v_archived jsonb;
BEGIN
    INSERT INTO payment_events (webhook_id, type, payment_id, reservation_id, amount_cents,
                                currency, outcome, received_at)
    VALUES (p_webhook_id, p_type, p_payment_id, p_reservation_id, p_amount_cents, p_currency,
            'processing', p_now)
    ON CONFLICT (webhook_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'duplicate';
    END IF;
    -- Two deliveries of one payment under different ids wait for each other here, so the
    -- second sees the first below even for a stay no row lock covers (an archived one).
    PERFORM pg_advisory_xact_lock(hashtextextended('innkeeper.payment:' || p_payment_id, 0));

    SELECT * INTO r FROM reservations WHERE reservation_id = p_reservation_id FOR UPDATE;
    v_found := FOUND;

    -- Checked under the payment's lock: of two deliveries of one payment under different
    -- ids, the second waits for the first and sees it.
    IF p_type = 'payment.succeeded' AND EXISTS (
        SELECT 1 FROM payment_events
        WHERE payment_id = p_payment_id AND reservation_id = p_reservation_id
          AND type = 'payment.succeeded' AND webhook_id <> p_webhook_id) THEN
        v_outcome := 'duplicate';
    ELSIF NOT v_found THEN
        SELECT to_jsonb(a) - 'archived_at' INTO v_archived
        FROM reservations_archive a WHERE a.reservation_id = p_reservation_id;
        IF v_archived IS NOT NULL AND p_type = 'payment.succeeded' THEN
            PERFORM ask_refund(p_reservation_id, (v_archived ->> 'hotel_id')::bigint,
                               v_archived, p_payment_id, p_amount_cents, p_currency);
            v_outcome := 'refund_requested';
        ELSIF v_archived IS NOT NULL THEN
            v_outcome := 'ignored';
        ELSE
            v_outcome := 'unknown_reservation';
        END IF;
    ELSIF p_type = 'payment.succeeded' THEN
        IF r.status = 'pending' AND r.hold_expires_at > p_now
           AND r.payment_status IN ('unpaid', 'failed', 'mismatched') THEN
            IF r.payment_status = 'mismatched' THEN
                PERFORM ask_refund(r.reservation_id, r.hotel_id, to_jsonb(r), r.payment_id,
                                   r.paid_cents,
                                   payment_currency(r.payment_id, r.reservation_id, r.currency));
            END IF;
            IF p_amount_cents = r.total_cents AND p_currency = r.currency THEN
                UPDATE reservations
                SET status = 'confirmed', payment_status = 'paid', payment_id = p_payment_id,
                    paid_cents = p_amount_cents, updated_at = p_now
                WHERE reservation_id = p_reservation_id;
                v_outcome := 'confirmed';
            ELSE
                UPDATE reservations
                SET payment_status = 'mismatched', payment_id = p_payment_id,
                    paid_cents = p_amount_cents, updated_at = p_now
                WHERE reservation_id = p_reservation_id;
                v_outcome := 'mismatched';
            END IF;
        ELSE
            -- The hold ended, the stay was canceled, or it is paid already by another
            -- payment: the nights are not taken again behind anyone's back; the money
            -- goes back. A stay not paid otherwise shows this payment and its refund, and
            -- a mismatched payment it showed goes back too.
            IF r.payment_status = 'mismatched' THEN
                PERFORM ask_refund(r.reservation_id, r.hotel_id, to_jsonb(r), r.payment_id,
                                   r.paid_cents,
                                   payment_currency(r.payment_id, r.reservation_id, r.currency));
            END IF;
            IF r.payment_status NOT IN ('paid', 'refund_requested', 'refunded') THEN
                UPDATE reservations
                SET payment_status = 'refund_requested', payment_id = p_payment_id,
                    paid_cents = p_amount_cents, updated_at = p_now
                WHERE reservation_id = p_reservation_id
                RETURNING * INTO r;
            END IF;
            PERFORM ask_refund(r.reservation_id, r.hotel_id, to_jsonb(r), p_payment_id,
                               p_amount_cents, p_currency);
            v_outcome := 'refund_requested';
        END IF;
    ELSIF p_type = 'payment.failed' THEN
        -- A mismatched payment stays on the stay, to be asked back when it ends.
        IF r.payment_status IN ('unpaid', 'failed', 'mismatched') THEN
            UPDATE reservations
            SET payment_status = CASE WHEN payment_status = 'mismatched' THEN 'mismatched'
                                      ELSE 'failed' END,
                updated_at = p_now
            WHERE reservation_id = p_reservation_id;
            v_outcome := 'failed';
        ELSE
            v_outcome := 'ignored';
        END IF;
    ELSIF p_type = 'refund.succeeded' THEN
        IF NOT EXISTS (
            SELECT 1 FROM payment_events
            WHERE payment_id = p_payment_id AND reservation_id = p_reservation_id
              AND type = 'payment.succeeded' AND currency = p_currency) THEN
            v_outcome := 'ignored';
        ELSE
            -- A refund of the payment the stay shows counts on it; one of another payment
            -- (a second one, given back) is recorded here only.
            UPDATE reservations
            SET refunded_cents = refunded_cents + p_amount_cents,
                payment_status = CASE WHEN refunded_cents + p_amount_cents >= paid_cents
                                      AND payment_status = 'refund_requested'
                                      THEN 'refunded' ELSE payment_status END,
                updated_at = p_now
            WHERE reservation_id = p_reservation_id AND payment_id = p_payment_id;
            v_outcome := 'refunded';
        END IF;
    ELSE
        v_outcome := 'ignored';
    END IF;

    UPDATE payment_events SET outcome = v_outcome WHERE webhook_id = p_webhook_id;
    RETURN v_outcome;
END
$$;
