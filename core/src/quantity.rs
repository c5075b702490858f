//! `resource.Quantity`: the numbers of resource requests, limits and quotas (`500m`, `1Gi`,
//! `2e3`), parsed exactly as kube-apiserver does, compared and added without rounding.

use std::cmp::Ordering;

/// A `resource.Quantity`, exactly: `mantissa × 10^exponent` (binary suffixes multiplied in).
#[derive(Clone, Debug)]
pub struct Quantity {
    mantissa: i128,
    exponent: i32,
}

impl Quantity {
    /// kube's quantity grammar: a signed decimal number, then a binary suffix (`Ki`..`Ei`),
    /// a decimal one (`n`, `u`, `m`, `k`, `M`..`E`) or a decimal exponent (`e3`, `E-2`).
    pub fn parse(text: &str) -> Option<Quantity> {
        let (negative, body) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (number, suffix) = body.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return None;
        }
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return None;
        }
        let mut mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let mut exponent = -(fraction.len() as i32);
        let binary = |power: u32| -> Option<i128> { 1i128.checked_shl(10 * power) };
        match suffix {
            "" => {}
            "Ki" => mantissa = mantissa.checked_mul(binary(1)?)?,
            "Mi" => mantissa = mantissa.checked_mul(binary(2)?)?,
            "Gi" => mantissa = mantissa.checked_mul(binary(3)?)?,
            "Ti" => mantissa = mantissa.checked_mul(binary(4)?)?,
            "Pi" => mantissa = mantissa.checked_mul(binary(5)?)?,
            "Ei" => mantissa = mantissa.checked_mul(binary(6)?)?,
            "n" => exponent -= 9,
            "u" => exponent -= 6,
            "m" => exponent -= 3,
            "k" => exponent += 3,
            "M" => exponent += 6,
            "G" => exponent += 9,
            "T" => exponent += 12,
            "P" => exponent += 15,
            "E" => exponent += 18,
            s if s.starts_with(['e', 'E']) => {
                let power: i32 = s[1..].parse().ok()?;
                if !s[1..]
                    .trim_start_matches(['+', '-'])
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                exponent = exponent.checked_add(power)?;
            }
            _ => return None,
        }
        Some(Quantity {
            mantissa: if negative { -mantissa } else { mantissa },
            exponent,
        })
    }

    fn aligned(&self, other: &Quantity) -> Option<(i128, i128, i32)> {
        let exponent = self.exponent.min(other.exponent);
        let scale = |q: &Quantity| -> Option<i128> {
            let shift = u32::try_from(q.exponent - exponent).ok()?;
            q.mantissa.checked_mul(10i128.checked_pow(shift)?)
        };
        Some((scale(self)?, scale(other)?, exponent))
    }

    pub fn compare(&self, other: &Quantity) -> Ordering {
        match self.aligned(other) {
            Some((a, b, _)) => a.cmp(&b),
            None => self.as_f64().total_cmp(&other.as_f64()),
        }
    }

    /// The sum (or, with `negate`, the difference); `None` on overflow.
    pub fn combine(&self, other: &Quantity, negate: bool) -> Option<Quantity> {
        let (a, b, exponent) = self.aligned(other)?;
        let mantissa = if negate {
            a.checked_sub(b)?
        } else {
            a.checked_add(b)?
        };
        Some(Quantity { mantissa, exponent })
    }

    /// The value as an integer, when it is one.
    pub fn as_i64(&self) -> Option<i64> {
        let value = if self.exponent >= 0 {
            self.mantissa
                .checked_mul(10i128.checked_pow(self.exponent as u32)?)?
        } else {
            let divisor = 10i128.checked_pow(self.exponent.unsigned_abs())?;
            if self.mantissa % divisor != 0 {
                return None;
            }
            self.mantissa / divisor
        };
        i64::try_from(value).ok()
    }

    pub fn as_f64(&self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exponent)
    }
}

impl Quantity {
    /// -1, 0 or 1 (Go's `Quantity.Sign`).
    pub fn sign(&self) -> i64 {
        self.mantissa.signum() as i64
    }

    /// kube's canonical text (`Quantity.String()`): in the binary format (`binary`, what a
    /// quantity written with a `Ki`..`Ei` suffix keeps) an integer of at least 1024 gets the
    /// largest binary suffix that divides it; otherwise the decimal format: an integer
    /// mantissa and the largest decimal suffix (`m`, `k`, `M`…) that keeps it whole. Values
    /// finer than `1n` are rounded up to it, as kube's.
    pub fn canonical(&self, binary: bool) -> String {
        let (mut mantissa, mut exponent) = (self.mantissa, self.exponent);
        while mantissa != 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        if mantissa == 0 {
            return "0".to_string();
        }
        if exponent < -9 {
            let divisor = 10i128.pow((-9 - exponent) as u32);
            let rounded = mantissa / divisor + i128::from(mantissa % divisor > 0);
            return Quantity {
                mantissa: rounded,
                exponent: -9,
            }
            .canonical(binary);
        }
        if binary
            && exponent >= 0
            && let Some(value) = 10i128
                .checked_pow(exponent as u32)
                .and_then(|scale| mantissa.checked_mul(scale))
            && value.abs() >= 1024
        {
            let mut value = value;
            let mut power = 0;
            while power < 6 && value % 1024 == 0 {
                value /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return format!("{value}{suffix}");
        }
        // The exponent down to a multiple of 3 (at most 18, `E`), the mantissa scaled up.
        let target = (exponent.div_euclid(3) * 3).min(18);
        let Some(mantissa) = u32::try_from(exponent - target)
            .ok()
            .and_then(|shift| 10i128.checked_pow(shift))
            .and_then(|scale| mantissa.checked_mul(scale))
        else {
            return format!("{}e{}", self.mantissa, self.exponent);
        };
        let suffix = match target {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        format!("{mantissa}{suffix}")
    }
}

impl From<i64> for Quantity {
    fn from(value: i64) -> Quantity {
        Quantity {
            mantissa: i128::from(value),
            exponent: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Quantity;

    fn canonical(text: &str) -> String {
        let binary = text.ends_with('i');
        Quantity::parse(text).unwrap().canonical(binary)
    }

    #[test]
    fn canonical_text_is_kubes() {
        assert_eq!(canonical("0"), "0");
        assert_eq!(canonical("10"), "10");
        assert_eq!(canonical("1000"), "1k");
        assert_eq!(canonical("1500"), "1500");
        assert_eq!(canonical("1.5"), "1500m");
        assert_eq!(canonical("0.1"), "100m");
        assert_eq!(canonical("500m"), "500m");
        assert_eq!(canonical("2000m"), "2");
        assert_eq!(canonical("1Gi"), "1Gi");
        assert_eq!(canonical("1024Mi"), "1Gi");
        assert_eq!(canonical("1536Mi"), "1536Mi");
        assert_eq!(canonical("1000Ki"), "1000Ki");
        assert_eq!(canonical("0.5Ki"), "512");
        assert_eq!(canonical("1e3"), "1k");
        assert_eq!(canonical("1G"), "1G");
        assert_eq!(canonical("0.1n"), "1n");
        assert_eq!(
            Quantity::parse("1Mi")
                .unwrap()
                .combine(&Quantity::parse("1Mi").unwrap(), false)
                .unwrap()
                .canonical(true),
            "2Mi"
        );
    }
}
